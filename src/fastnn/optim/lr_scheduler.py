"""Learning-rate schedules with torch.optim.lr_scheduler's names and usage; any optimizer.

    scheduler = StepLR(optimizer, step_size=10, gamma=0.5)
    for epoch in range(epochs):
        train_one_epoch(...)
        scheduler.step()

Each schedule is a closed-form function of the epoch count t (`last_epoch`) and the group's
initial learning rate lr0, so `lr_at(lr0, t)` is the schedule's formula:
    StepLR            lr0 * gamma ** (t // step_size)                 (the notes' step decay)
    ExponentialLR     lr0 * gamma ** t       (the notes' lr0 * exp(-k t) with gamma = exp(-k))
    InverseTimeLR     lr0 / (1 + decay * t)                            (the notes' 1/t decay)
    CosineAnnealingLR eta_min + (lr0 - eta_min) * (1 + cos(pi t / T_max)) / 2
    LinearLR          lr0 * (start + (end - start) * min(t, total_iters) / total_iters)
                      (linear warm-up with start_factor < 1)
    LambdaLR          lr0 * lr_lambda(t)
SequentialLR runs schedules one after another (e.g. warm-up, then cosine), each counting its
epochs from its milestone.
"""
import math
import numbers

import numpy as np

from .._validation import check_float, check_int


def _check_lr(name, lr, epoch):
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr >= 0):
        raise ValueError(f"{name}: the schedule gives the learning rate {lr!r} at epoch {epoch}; "
                         "a learning rate must be a finite number >= 0")
    return lr


class LRScheduler:
    def __init__(self, optimizer, last_epoch=-1):
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError("param group has no 'initial_lr'; resuming a schedule needs the "
                               "optimizer state it was saved with")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def lr_at(self, base_lr, epoch):
        raise NotImplementedError

    def step(self):
        """Advance one epoch and set every group's learning rate."""
        self.last_epoch += 1
        self._set_lrs()

    def _set_lrs(self):
        """Every group's learning rate for last_epoch, all checked before any is set."""
        name = type(self).__name__
        lrs = [_check_lr(name, self._lr_or_inf(base), self.last_epoch) for base in self.base_lrs]
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr

    def _lr_or_inf(self, base):
        try:
            return float(self.lr_at(base, self.last_epoch))
        except OverflowError:  # e.g. gamma ** epoch past the float range: refused as inf
            return math.inf

    def get_last_lr(self):
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self):
        return {key: value for key, value in vars(self).items()
                if key not in ("optimizer", "lr_lambda", "schedulers")}

    def load_state_dict(self, state):
        vars(self).update(state)
        self._set_lrs()


def _positive(name, key, value):
    return check_float(f"{name}: {key}", value, 0, low_open=True)


def _factor(name, key, value):
    return check_float(f"{name}: {key}", value, 0)


class StepLR(LRScheduler):
    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size = check_int("StepLR: step_size", step_size, low=1)
        self.gamma = _factor("StepLR", "gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** (epoch // self.step_size)


class ExponentialLR(LRScheduler):
    def __init__(self, optimizer, gamma, last_epoch=-1):
        _positive("ExponentialLR", "gamma", gamma)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** epoch


class InverseTimeLR(LRScheduler):
    def __init__(self, optimizer, decay, last_epoch=-1):
        _factor("InverseTimeLR", "decay", decay)
        self.decay = decay
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return base_lr / (1 + self.decay * epoch)


class CosineAnnealingLR(LRScheduler):
    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        # (an epoch count, as in PyTorch: a tiny float T_max made the cosine's argument inf)
        self.T_max = check_int("CosineAnnealingLR: T_max", T_max, low=1)
        self.eta_min = _factor("CosineAnnealingLR", "eta_min", eta_min)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch /
                                                                        self.T_max)) / 2


class LinearLR(LRScheduler):
    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5,
                 last_epoch=-1):
        check_float("LinearLR: start_factor", start_factor, 0, 1, low_open=True)
        check_float("LinearLR: end_factor", end_factor, 0, 1)
        self.total_iters = check_int("LinearLR: total_iters", total_iters, low=1)
        self.start_factor, self.end_factor = start_factor, end_factor
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        progress = min(epoch, self.total_iters) / self.total_iters
        return base_lr * (self.start_factor + (self.end_factor - self.start_factor) * progress)


class LambdaLR(LRScheduler):
    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        if not callable(lr_lambda):
            raise TypeError("LambdaLR: lr_lambda must be a function of the epoch giving the "
                            f"learning rate's factor, got {lr_lambda!r}")
        self.lr_lambda = lr_lambda
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        factor = self.lr_lambda(epoch)
        if isinstance(factor, (bool, np.bool_)) or not isinstance(factor, numbers.Real):
            raise TypeError(f"LambdaLR: lr_lambda({epoch}) gave {factor!r}; it must give a "
                            "number (the factor of the initial learning rate)")
        return base_lr * factor  # a NaN, infinite or negative rate is refused by _check_lr


class SequentialLR(LRScheduler):
    """Schedules in turn: schedulers[k] runs from milestones[k-1] on, counting from 0 there."""

    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1):
        if len(milestones) != len(schedulers) - 1 or list(milestones) != sorted(milestones):
            raise ValueError("SequentialLR: expected len(schedulers) - 1 increasing milestones")
        self.schedulers, self.milestones = list(schedulers), list(milestones)
        for group in optimizer.param_groups:  # the children stepped once when built
            group["lr"] = group["initial_lr"]
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        k = sum(epoch >= m for m in self.milestones)
        start = self.milestones[k - 1] if k else 0
        return self.schedulers[k].lr_at(base_lr, epoch - start)
