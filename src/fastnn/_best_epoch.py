"""The best epoch of a Trainer.fit: the metric it is judged by, and keeping its parameters (and
best_checkpoint's file) when an epoch improves on it. Early stopping waits on it, and fit restores
it at the end."""
from contextlib import nullcontext

from .callbacks import interrupts_deferred, save_training_checkpoint


def monitored(trainer):
    """The name of the History entry the best epoch is judged by."""
    if trainer.early_stopping is not None:
        return trainer.early_stopping.monitor
    history = trainer.history
    return "val_loss" if history.val_loss and history.val_loss[-1] is not None else "train_loss"


def track_best(trainer):
    """After an epoch: keep it as trainer._best = (metric, epoch, state_dict) if it improved."""
    name = monitored(trainer)
    value = getattr(trainer.history, name)[-1]
    if value is None:
        return
    maximize = name.endswith("accuracy")
    best, early_stopping = trainer._best, trainer.early_stopping
    delta = early_stopping.min_delta if early_stopping is not None else 0.0
    better = best is None or (value > best[0] + delta if maximize else value < best[0] - delta)
    if not better:
        return
    # With a best checkpoint, Ctrl-C waits for the best epoch and its file: both are the new
    # best, or neither.
    with interrupts_deferred() if trainer.best_checkpoint is not None else nullcontext():
        trainer._best = (value, trainer.epoch, trainer._evaluated_state())
        if trainer.best_checkpoint is not None:
            save_training_checkpoint(trainer.best_checkpoint, trainer, averaged=True)
