"""Optimizers with PyTorch's names, signatures, defaults and formulas; the arithmetic is a kernel.

Code written for torch.optim ports by changing the import: SGD, Adagrad, RMSprop, Adam, AdamW take
the same arguments (parameter groups included) and give the same updates; LBFGS (in lbfgs.py) takes
torch.optim.LBFGS's arguments and its step(closure). Learning-rate schedules
are in fastnn.optim.lr_scheduler.
"""
from . import lr_scheduler
from .lbfgs import LBFGS
from .optimizers import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop, _FlatGroup

__all__ = ["Adagrad", "Adam", "AdamW", "LBFGS", "Optimizer", "RMSprop", "SGD", "lr_scheduler"]
