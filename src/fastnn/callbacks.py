"""What Trainer.fit records and keeps besides the loop: the History, early stopping, the
parameters' moving average (EMA), checkpoints, the progress report (Progress) and the
babysitting statistics (Monitor).

A callback is any object with some of the methods on_epoch_begin(trainer, epoch),
on_step(trainer, iteration, loss) (after each update) and on_epoch(trainer, epoch, history)
(after each completed epoch); Trainer(callbacks=[...]) calls them in order.
"""
import contextlib
import signal
import threading

import numpy as np

from ._activations import SPECS
from ._validation import check_float, check_int
from .layers import Activation, Dense, fused_activations


class TrainingWarning(UserWarning):
    """A babysitting signal from Trainer.fit (filter with warnings.simplefilter)."""


class History:
    """What `Trainer.fit` recorded. Per iteration: `loss` (data loss), `reg_loss`. Per epoch (one
    entry per completed epoch): `epochs`, `train_loss`, `train_accuracy`, `val_loss`,
    `val_accuracy`, `gap` (train minus validation accuracy: large means overfitting), `lr`,
    `time`, `update_ratio` ({parameter: ratio}), `activations` and
    `gradients` ({layer: {mean, std, saturated}}), `dead_fraction` ({layer: fraction}).
    `best_epoch`, `stop_reason` ("completed", "early stopping", "diverged: ...", "interrupted",
    "error: <exception>"),
    `warnings` (the messages warned), `wall_time`."""

    PER_EPOCH = ("epochs", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "gap", "lr",
                 "time", "update_ratio", "activations", "gradients", "dead_fraction")

    def __init__(self):
        self.loss, self.reg_loss = [], []
        for key in self.PER_EPOCH:
            setattr(self, key, [])
        self.best_epoch = None
        self.stop_reason = None
        self.warnings = []
        self.wall_time = 0.0

    def to_dict(self):
        return {key: value for key, value in vars(self).items()}

    @classmethod
    def from_dict(cls, state):
        history = cls()
        vars(history).update(state)
        return history

    def plot(self, path):
        """Write `<path>-loss.png` (data loss per iteration and a smoothed line) and
        `<path>-accuracy.png` (train and validation accuracy per epoch); return the two paths.
        Needs matplotlib (the `plot` extra)."""
        from .plotting import plot_history
        return plot_history(self, path)

    def __repr__(self):
        last = f", last val acc {self.val_accuracy[-1]:.4f}" if self.val_accuracy and \
            self.val_accuracy[-1] is not None else ""
        return (f"History({len(self.epochs)} epochs, {len(self.loss)} iterations{last}, "
                f"stop: {self.stop_reason})")


class EarlyStopping:
    """Stop when `monitor` ("val_loss", "val_accuracy", "train_loss") has not improved by more
    than `min_delta` for `patience` epochs; the best epoch's parameters are restored."""

    def __init__(self, monitor="val_loss", patience=5, min_delta=0.0):
        if monitor not in ("val_loss", "val_accuracy", "train_loss", "train_accuracy"):
            raise ValueError(f"EarlyStopping: unknown monitor {monitor!r}")
        patience = check_int("EarlyStopping: patience", patience, low=1)
        min_delta = check_float("EarlyStopping: min_delta", min_delta, low=0.0)
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta

    @property
    def maximize(self):
        return self.monitor.endswith("accuracy")


class EMA:
    """Exponential moving average of a model's parameters (Polyak averaging with decay):
    shadow = decay * shadow + (1 - decay) * param after every update. `with ema.applied():`
    swaps the averaged parameters in (for evaluation) and back."""

    def __init__(self, model, decay=0.999):
        self.decay = check_float("EMA: decay", decay, 0.0, 1.0, low_open=True, high_open=True)
        self.params = model.parameters()
        self.shadow = [p.data.copy() for p in self.params]

    def update(self):
        keep = 1.0 - self.decay
        for shadow, p in zip(self.shadow, self.params):
            shadow += p.dtype.type(keep) * (p.data - shadow)

    def applied(self):
        ema = self

        class _Swap:
            def __enter__(self):
                self.saved = [p.data.copy() for p in ema.params]
                for shadow, p in zip(ema.shadow, ema.params):
                    p.data[...] = shadow

            def __exit__(self, *exc):
                for saved, p in zip(self.saved, ema.params):
                    p.data[...] = saved

        return _Swap()


# -- checkpoints -----------------------------------------------------------------------------------

@contextlib.contextmanager
def interrupts_deferred():
    """Hold a Ctrl-C (SIGINT) that arrives in the block until the block has finished, then
    deliver it, so that a checkpoint write is completed rather than cut short. Only in the main
    thread (the one Python delivers signals to) and only over Python's own SIGINT handler."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    received = []
    signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if received:
        raise KeyboardInterrupt


def save_training_checkpoint(path, trainer, averaged=False):
    """Write the model, its optimizer and everything that continues the run (see
    resume_state) to `path`, atomically; `averaged`: the EMA's parameters in the model's place."""
    from .io import save_checkpoint
    with interrupts_deferred():
        if averaged and trainer.ema is not None:
            with trainer.ema.applied():
                save_checkpoint(path, trainer.model, trainer.optimizer,
                                extra=resume_state(trainer))
        else:
            save_checkpoint(path, trainer.model, trainer.optimizer, extra=resume_state(trainer))


_SCHEDULE_STATE = ("optimizer", "lr_lambda", "schedulers", "last_epoch", "base_lrs",
                   "_last_lr")


def schedule_config(schedule):
    """What fixes a schedule's learning rates apart from its position: class and settings,
    children's too (JSON values, for checkpoints). None without a schedule."""
    if schedule is None:
        return None
    config = {"class": type(schedule).__name__}
    for key, value in vars(schedule).items():
        if key not in _SCHEDULE_STATE and isinstance(value, (int, float, str, bool, list)):
            config[key] = value
    if getattr(schedule, "schedulers", None):
        config["schedulers"] = [schedule_config(child) for child in schedule.schedulers]
    return config


def _describe_schedule(config):
    settings = ", ".join(f"{k}={v}" for k, v in config.items() if k not in ("class", "schedulers"))
    children = "; ".join(_describe_schedule(c) for c in config.get("schedulers", []))
    inner = "; ".join(part for part in (settings, children) if part)
    return f"{config['class']}({inner})"


def resume_state(trainer):
    """The trainer's part of a checkpoint: epoch, shuffling generator, augmentation draws,
    history, schedule, best epoch and moving average (JSON values and arrays)."""
    best = trainer._best
    return {"trainer": {"epoch": trainer.epoch, "rng": trainer.rng.bit_generator.state,
                        "augment": trainer.augment.get_state()
                        if hasattr(trainer.augment, "get_state") else None,
                        "history": trainer.history.to_dict(),
                        "schedule": trainer.schedule.state_dict() if trainer.schedule else None,
                        "best": None if best is None else [best[0], best[1], best[2]],
                        "ema": None if trainer.ema is None else list(trainer.ema.shadow),
                        "epochs": trainer.epochs,
                        "schedule_config": schedule_config(trainer.schedule)}}


def resume(trainer, path):
    """Trainer.resume: load the checkpoint at `path` into the trainer, checked first."""
    from .io import load_checkpoint
    state = load_checkpoint(path)
    saved_run = (state.extra or {}).get("trainer")
    if saved_run is None:
        raise ValueError(f"Trainer.resume: {path} is not a training checkpoint (write one "
                         "with Trainer(checkpoint=...))")
    optimizer = trainer.optimizer
    if state.optimizer is not None and type(state.optimizer) is not type(optimizer):
        raise ValueError(f"Trainer.resume: {path} was trained with "
                         f"{type(state.optimizer).__name__}, this Trainer has "
                         f"{type(optimizer).__name__}: its state cannot continue the "
                         f"run; resume with {type(state.optimizer).__name__} or start anew")
    saved, mine = saved_run.get("schedule_config"), schedule_config(trainer.schedule)
    if saved is not None and mine is not None and saved != mine:
        run = f" (a run of {saved_run['epochs']} epochs)" if "epochs" in saved_run else ""
        raise ValueError(f"Trainer.resume: {path}{run} has the schedule "
                         f"{_describe_schedule(saved)}, this Trainer "
                         f"{_describe_schedule(mine)}: the learning rates would not continue "
                         "the run; resume with the same schedule (and, for a schedule over "
                         "the run's length, the same epochs) or start anew")
    compute = state.model.compute_dtype
    if trainer.compute_dtype not in (None, compute):
        raise ValueError(f"Trainer.resume: {path} was trained with compute_dtype {compute!r}, "
                         f"this Trainer has compute_dtype {trainer.compute_dtype!r}: the run "
                         f"would not continue as it was; resume with {compute!r} or start anew")
    trainer.model.compute_dtype = compute  # (refused, before anything is loaded, when unfit)
    trainer.model.load_state_dict(state.model.state_dict())
    for layer, saved_layer in zip(trainer.model.layers, state.model.layers):
        layer.set_extra_state(saved_layer.get_extra_state())  # Dropout's seed, index and step
    if state.optimizer is not None:
        optimizer.load_state_dict(state.optimizer.state_dict())
    trainer.epoch = saved_run["epoch"]
    trainer.rng.bit_generator.state = saved_run["rng"]
    if saved_run.get("augment") is not None and hasattr(trainer.augment, "set_state"):
        trainer.augment.set_state(saved_run["augment"])
    trainer.history = History.from_dict(saved_run["history"])
    if trainer.schedule is not None and saved_run["schedule"] is not None:
        trainer.schedule.load_state_dict(saved_run["schedule"])
    if saved_run["best"] is not None:
        trainer._best = tuple(saved_run["best"])
    if trainer.ema is not None and saved_run["ema"] is not None:
        trainer.ema.shadow = [np.array(s, dtype=p.dtype) for s, p in
                              zip(saved_run["ema"], trainer.ema.params)]
    return trainer


# -- reporting ------------------------------------------------------------------------------------

class Progress:
    """One line per epoch (loss, accuracies, learning rate, time) and, while the epoch runs, a
    tqdm bar over its minibatches when tqdm is installed (the `progress` extra) and the output
    is a terminal. Trainer(progress=True) runs one."""

    bar = None

    def on_epoch_begin(self, trainer, epoch):
        self.close()
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return  # no bar: the epoch's line says it all
        # disable=None: no bar when the output is not a terminal (logs, pipes, CI).
        self.bar = tqdm(total=trainer.n_batches, desc=f"epoch {epoch}/{trainer.epochs}",
                        leave=False, disable=None)

    def on_step(self, trainer, iteration, loss):
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            self.bar.update()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_epoch(self, trainer, epoch, h):
        parts = [f"epoch {h.epochs[-1]:3d}/{trainer.epochs}", f"loss {h.train_loss[-1]:.4f}"]
        if h.train_accuracy[-1] is not None:
            parts.append(f"train acc {h.train_accuracy[-1]:.4f}")
        if h.val_loss[-1] is not None:
            parts.append(f"val loss {h.val_loss[-1]:.4f}")
        if h.val_accuracy[-1] is not None:
            parts.append(f"val acc {h.val_accuracy[-1]:.4f}")
        parts.append(f"lr {h.lr[-1]:.3g}")
        parts.append(f"{1000 * h.time[-1]:.0f} ms")
        print("  ".join(parts))


# -- babysitting -----------------------------------------------------------------------------------

def _effective_activation(layer):
    if isinstance(layer, Dense):
        return layer.epilogue[0]  # (its own, or the activation layer's it ran, fused)
    if isinstance(layer, Activation):
        return layer.activation
    return None


def _running_layers(model):
    """(index, layer) of the layers that run their own forward: not an activation layer that the
    model runs inside the Dense before it."""
    fused = fused_activations(model.layers)
    return [(i, layer) for i, layer in enumerate(model.layers) if i - 1 not in fused]


def _saturated(activation, A):
    bounds = SPECS[activation].saturated if activation is not None else None
    if bounds is None:
        return None
    return float(np.mean((A < bounds[0]) | (A > bounds[1])))


class Monitor:
    """The notes' babysitting statistics, recorded in the trainer's History once per epoch from
    its last step: the update/weight ratio of every parameter, activation and gradient
    statistics per layer with the saturated fraction of tanh/sigmoid units, and the fraction of
    dead ReLU units (that never fired on the epoch's data). It warns (through the trainer) when
    a ratio leaves trainer.update_ratio_range, most units saturate or more than
    trainer.dead_threshold of a layer's units are dead. Trainer(monitor=True) runs one."""

    def on_epoch_begin(self, trainer, epoch):
        self.epoch, self.first = epoch, len(trainer.history.loss) + 1
        self.n_batches = trainer.n_batches
        self.relu_layers = [l for _, l in _running_layers(trainer.model)
                            if _effective_activation(l) == "relu"]
        self.fired = {}  # per ReLU layer: which units fired at least once this epoch
        self.before = self._parameters(trainer) if self.n_batches == 1 else None

    @staticmethod
    def _parameters(trainer):
        return [p.data.copy() for p in trainer.model.parameters()]

    def on_step(self, trainer, iteration, loss):
        for layer in self.relu_layers:
            mask = self.fired.setdefault(id(layer), np.zeros(layer._A.shape[1], dtype=bool))
            np.logical_or(mask, np.any(layer._A > 0, axis=0), out=mask)
        batch = iteration - self.first
        if batch == self.n_batches - 2:
            self.before = self._parameters(trainer)  # the last update starts from these
        elif batch == self.n_batches - 1:
            self._record(trainer)

    def _record(self, trainer):
        history, model, epoch = trainer.history, trainer.model, self.epoch
        low, high = trainer.update_ratio_range
        # The ~1e-3 rule calibrates the base learning rate: a schedule that has decayed the rate
        # by lr0 / lr is expected to shrink the ratio by as much.
        group = trainer.optimizer.param_groups[0]
        initial_lr = group.get("initial_lr", group["lr"])
        decayed = initial_lr / group["lr"] if group["lr"] > 0 else 1.0
        # A warm-up holds the rate below the base on purpose, rising: the rule applies after it.
        warming_up = group["lr"] < initial_lr and (not history.lr or group["lr"] > history.lr[-1])
        ratios = {}
        labelled = [(f"{i}.{p.name}", p) for i, layer in enumerate(model.layers)
                    for p in layer.parameters()]
        for (label, p), old in zip(labelled, self.before):
            norm = float(np.linalg.norm(old))
            ratio = float(np.linalg.norm(p.data - old)) / norm if norm > 0 else float("inf")
            ratios[label] = ratio
            if p.is_weight and p.requires_grad and not warming_up and \
                    not low <= ratio * decayed <= high:
                advice = "too high" if ratio * decayed > high else "too low"
                i, name = label.split(".", 1)
                trainer._warn(f"epoch {epoch}: update/weight ratio of {name} in "
                              f"{trainer._layer_name(int(i))} is {ratio:.1e}, far from the "
                              f"~1e-3 the notes recommend (learning rate {advice}?)",
                              kind=f"update ratio {label}")
        history.update_ratio.append(ratios)
        activations, gradients = {}, {}
        for i, layer in _running_layers(model):
            A = getattr(layer, "_A", None)
            if A is None or not isinstance(layer, (Dense, Activation)):
                continue
            act = _effective_activation(layer)
            key = f"{i}:{layer!r}"
            activations[key] = {"mean": float(A.mean()), "std": float(A.std()),
                                "saturated": _saturated(act, A)}
            grads = [p.grad for p in layer.parameters() if p.is_weight and p.requires_grad]
            if grads:
                gradients[key] = {"mean": float(grads[0].mean()), "std": float(grads[0].std())}
            saturated = activations[key]["saturated"]
            if saturated is not None and saturated > 0.5:
                trainer._warn(f"epoch {epoch}: {saturated:.0%} of the {act} units of "
                              f"{trainer._layer_name(i)} are saturated (their gradients "
                              "vanish): smaller weights or inputs, or another activation",
                              kind=f"saturated {i}")
        history.activations.append(activations)
        history.gradients.append(gradients)
        dead = {}
        for layer in self.relu_layers:
            i = model.layers.index(layer)
            fraction = 1.0 - float(np.mean(self.fired[id(layer)]))
            dead[f"{i}:{layer!r}"] = fraction
            if fraction > trainer.dead_threshold:
                trainer._warn(f"epoch {epoch}: {fraction:.0%} of the ReLU units of "
                              f"{trainer._layer_name(i)} never fired on this epoch's data (dead "
                              "units): lower the learning rate or check the initialization",
                              kind=f"dead {i}")
        history.dead_fraction.append(dead)
