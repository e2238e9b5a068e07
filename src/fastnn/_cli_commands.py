"""What the `fastnn` commands do (train, check, search): data, model, optimizer and schedule
from the parsed arguments, and the runs themselves; cli.py parses and dispatches."""
import os
import sys
import time
import warnings

import numpy as np

from . import _backend, data, losses, optim, regularization
from .gradient_check import gradcheck
from .io import save
from .layers import BatchNorm, Dense, Dropout
from .model import Sequential
from .optim import lr_scheduler
from .preprocessing import StandardScaler
from .sanity import sanity_checks
from .trainer import EarlyStopping, Trainer, TrainingWarning

DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10")
OPTIMIZERS = {"sgd": optim.SGD, "adam": optim.Adam, "adamw": optim.AdamW,
              "rmsprop": optim.RMSprop, "adagrad": optim.Adagrad}
SCHEDULES = ("none", "step", "exponential", "inverse-time", "cosine")
CLASSIFICATION_LOSSES = losses.MULTICLASS  # svm: the hinge


def load_dataset(args):
    """(X, y, name): the whole training set of --dataset, as read."""
    if args.dataset == "digits":
        X, y = data.load_digits()
        name = "digits (8x8, UCI, shipped with fastnn)"
    else:
        if args.data_dir is None:
            raise ValueError(f"--dataset {args.dataset} reads files on disk: pass --data-dir")
        if args.dataset == "cifar10":
            X, y = data.load_cifar10(args.data_dir, "train")
        else:
            X, y = data.load_mnist(args.data_dir, "train")
        name = f"{args.dataset} ({args.data_dir})"
    return X, y, name


def load_data(args):
    """(X_train, y_train, X_val, y_val, name): standardized with training statistics."""
    X, y, name = load_dataset(args)
    train_idx, val_idx = data.stratified_split(y, args.val_fraction, seed=args.seed)
    scaler = StandardScaler().fit(X[train_idx])
    X_train = scaler.transform(X[train_idx]).astype(args.dtype)
    X_val = scaler.transform(X[val_idx]).astype(args.dtype)
    return X_train, y[train_idx], X_val, y[val_idx], name


def build_model(args, in_features, n_classes, dtype=None, init=None, hidden=None):
    layers, width = [], in_features
    for size in (args.hidden if hidden is None else hidden):
        layer_init = init if init is not None else args.init
        if args.batchnorm:
            layers += [Dense(width, size, init=layer_init), BatchNorm(size),
                       _activation_layer(args.activation)]
        else:
            layers.append(Dense(width, size, activation=args.activation, init=layer_init))
        if args.dropout > 0:
            layers.append(Dropout(args.dropout))
        width = size
    layers.append(Dense(width, n_classes, init=init if init is not None else args.init))
    return Sequential(*layers, dtype=dtype or args.dtype, seed=args.seed)


def _activation_layer(name):
    from .layers import activation_layers
    return activation_layers()[name]()


def build_optimizer(args, model):
    name = args.optimizer
    params = model.parameters()
    if name == "sgd":
        lr = 0.05 if args.lr is None else args.lr
        return optim.SGD(params, lr=lr, momentum=args.momentum,
                         nesterov=args.nesterov and args.momentum > 0,
                         weight_decay=args.weight_decay)
    if name in ("adam", "adamw"):
        lr = 1e-3 if args.lr is None else args.lr
        return OPTIMIZERS[name](params, lr=lr, betas=tuple(args.betas),
                                weight_decay=args.weight_decay)
    lr = 1e-2 if args.lr is None else args.lr
    if name == "rmsprop":
        return optim.RMSprop(params, lr=lr, momentum=args.momentum,
                             weight_decay=args.weight_decay)
    return optim.Adagrad(params, lr=lr, weight_decay=args.weight_decay)


def build_schedule(args, optimizer):
    epochs = args.epochs - args.warmup
    if args.schedule == "none":
        main = lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)
    elif args.schedule == "step":
        main = lr_scheduler.StepLR(optimizer, args.step_size, args.gamma)
    elif args.schedule == "exponential":
        main = lr_scheduler.ExponentialLR(optimizer, args.gamma)
    elif args.schedule == "inverse-time":
        main = lr_scheduler.InverseTimeLR(optimizer, args.decay)
    else:
        main = lr_scheduler.CosineAnnealingLR(optimizer, max(epochs, 1))
    if args.warmup <= 0:
        return main
    warmup = lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=args.warmup)
    return lr_scheduler.SequentialLR(optimizer, [warmup, main], [args.warmup])


def _configure_runtime(args):
    if args.backend:
        _backend.set_backend(args.backend)
    if args.threads:
        _backend.set_num_threads(args.threads)


class RunFailed(RuntimeError):
    """Training ran but failed (diverged, or a layer's ReLUs all died): exit status 1."""


def _check_outputs(args):
    """Before the first step: every file the run writes has an existing, writable folder, and
    every optional dependency it needs is installed, so no training is lost at the end."""
    for option, path in (("--save", args.save), ("--checkpoint", args.checkpoint),
                         ("--plot", args.plot)):
        if path is None:
            continue
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise OSError(f"{option} {path}: the folder {folder} does not exist")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OSError(f"{option} {path}: the folder {folder} is not writable")
    if args.plot:
        from .plotting import _pyplot
        _pyplot()


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {message}", file=sys.stderr)


def _failure(history):
    """What went wrong in a run that ended, or None when it trained."""
    if history.stop_reason and history.stop_reason.startswith("diverged"):
        return (f"training {history.stop_reason}; the model was not saved. Lower the "
                f"learning rate (--lr) or check the data")
    dead = history.dead_fraction[-1] if history.dead_fraction else {}
    layers = [name for name, fraction in dead.items() if fraction >= 1.0]
    if layers:
        named = ", ".join(f"layer {name.replace(':', ': ', 1)}" for name in layers)
        return (f"every ReLU unit of {named} was dead on the last epoch (none fired on any "
                f"sample), so the output no longer depends on the input; the model was not "
                f"saved. Lower the learning rate (--lr) or use --activation leaky_relu")
    return None


def train(args):
    """Run `fastnn train`; returns the final validation accuracy. Raises RunFailed when the run
    diverged or its ReLUs died."""
    if args.warmup >= args.epochs:
        raise ValueError(f"--warmup {args.warmup} must be fewer than --epochs {args.epochs} "
                         f"(the warm-up is part of the run)")
    if args.compute_dtype == "bfloat16" and args.dtype != "float32":
        raise ValueError(f"--compute-dtype bfloat16 needs --dtype float32 (its weights are "
                         f"float32), got --dtype {args.dtype}")
    _check_outputs(args)
    _configure_runtime(args)
    X_train, y_train, X_val, y_val, name = load_data(args)
    n_classes = int(max(y_train.max(), y_val.max())) + 1
    model = build_model(args, X_train.shape[1], n_classes)
    optimizer = build_optimizer(args, model)
    penalty = None
    if args.l1 or args.l2:
        penalty = regularization.ElasticNet(l1=args.l1, l2=args.l2)
    trainer = Trainer(
        model, optimizer, loss=args.loss, batch_size=args.batch_size, epochs=args.epochs,
        schedule=build_schedule(args, optimizer), regularization=penalty,
        constraint=regularization.MaxNorm(args.max_norm) if args.max_norm else None,
        early_stopping=EarlyStopping("val_loss", args.early_stopping)
        if args.early_stopping else None,
        ema=args.ema, checkpoint=args.checkpoint, seed=args.seed, progress=not args.quiet,
        compute_dtype=args.compute_dtype)
    if args.resume:
        try:
            trainer.resume(args.resume)
        except ValueError as error:
            raise ValueError(f"--resume {args.resume}: {error}".replace("Trainer.resume: ", "")
                             .replace("this Trainer has", "this run has")
                             .replace("this Trainer", "this run")) from None
    if not args.quiet:
        print(f"{name}: {len(y_train)} train / {len(y_val)} validation samples, "
              f"{X_train.shape[1]} features, {n_classes} classes")
        width = [X_train.shape[1], *args.hidden, n_classes]
        print(f"model: {' -> '.join(map(str, width))} ({args.activation}"
              f"{', batchnorm' if args.batchnorm else ''}"
              f"{f', dropout {args.dropout:g}' if args.dropout else ''}), "
              f"{sum(p.size for p in model.parameters())} parameters, {args.dtype}"
              f"{' (bfloat16 compute)' if args.compute_dtype == 'bfloat16' else ''}, "
              f"{args.optimizer}, backend {_backend.get_backend()}, "
              f"{_backend.get_num_threads()} threads")
        if args.resume:
            print(f"resuming {args.resume} after epoch {trainer.epoch}")
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore" if args.quiet else "default", TrainingWarning)
        if args.quiet:
            warnings.simplefilter("ignore", RuntimeWarning)
        warnings.showwarning = _show_warning  # one line each; catch_warnings restores it
        history = trainer.fit(X_train, y_train, validation_data=(X_val, y_val))
    val_accuracy = float(np.mean(model.predict(X_val) == y_val))
    failure = _failure(history)
    best = f"; lowest validation loss at epoch {history.best_epoch}" if history.best_epoch else ""
    print(f"validation accuracy {val_accuracy:.4f} after {trainer.epoch} epochs in "
          f"{time.perf_counter() - started:.2f} s "
          f"({'failed' if failure else history.stop_reason}{best})")
    if failure:
        raise RunFailed(failure)
    if args.save:
        save(model, args.save)
        print(f"saved the model to {args.save}")
    if args.plot:
        for path in history.plot(args.plot):
            print(f"wrote {path}")
    return val_accuracy


def check(args):
    """Run `fastnn check`; returns True when every check passed."""
    _configure_runtime(args)
    X_train, y_train, _, _, name = load_data(args)
    n_classes = int(y_train.max()) + 1
    print(f"{name}: sanity checks on {len(y_train)} training samples")
    small = build_model(args, X_train.shape[1], n_classes, init=0.01)
    results = sanity_checks(small, X_train, y_train, loss=args.loss,
                            regularization=regularization.L2(args.l2) if args.l2 else None)
    for result in results:
        print(f"  {result}")
    rng = np.random.default_rng(args.seed)
    pick = rng.choice(len(X_train), size=min(8, len(X_train)), replace=False)
    tiny = build_model(args, X_train.shape[1], n_classes, dtype="float64",
                       hidden=[min(h, 16) for h in args.hidden])
    checked = gradcheck(tiny, X_train[pick].astype(np.float64), y_train[pick], loss=args.loss,
                        seed=args.seed, warn=False)
    print(f"gradient check on {' -> '.join(repr(layer) for layer in tiny.layers)}")
    for line in str(checked).splitlines():
        print(f"  {line}")
    passed = all(r.passed for r in results) and checked.ok
    print("all checks passed" if passed else "SOME CHECKS FAILED")
    return passed


def search_setup(epochs):
    """(estimator, space) that `fastnn search` searches (also bench/bench_search.py)."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler as SklearnStandardScaler
    from .search import choice, log_uniform, uniform
    from .sklearn import MLPClassifier
    estimator = Pipeline([("scale", SklearnStandardScaler()),
                          ("mlp", MLPClassifier(max_iter=epochs))])
    space = {"mlp__learning_rate_init": log_uniform(1e-4, 1e-1),
             "mlp__alpha": log_uniform(1e-6, 1e-1),
             "mlp__hidden_layer_sizes": choice([(64,), (128,), (256,)]),
             "mlp__dropout": uniform(0.0, 0.5)}
    return estimator, space


def search_command(args):
    """Run `fastnn search`; returns the SearchResult."""
    from .search import random_search
    X, y, name = load_dataset(args)
    estimator, space = search_setup(args.epochs)
    where = f"Dask scheduler {args.scheduler}" if args.scheduler else (
        f"{args.jobs} processes" if args.jobs != 1 else "one process")
    print(f"{name}: {len(y)} samples, {X.shape[1]} features; {args.trials} trials"
          f"{f' + {args.trials} refined around the best {args.refine}' if args.refine else ''}"
          f" on {where}, validation "
          f"{f'{args.cv} folds' if args.cv else f'split {args.val_fraction:g}'}")
    for key, dist in space.items():
        print(f"  {key.removeprefix('mlp__')}: {dist!r}")
    with warnings.catch_warnings():
        # max_iter reached is what a search of short fits expects; each trial records its own.
        from sklearn.exceptions import ConvergenceWarning
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = random_search(estimator, space, X, y, n_iter=args.trials, cv=args.cv,
                               validation_fraction=args.val_fraction, refine=args.refine,
                               n_jobs=None if args.scheduler else args.jobs,
                               random_state=args.seed, scheduler=args.scheduler,
                               progress=not args.quiet)
    print(result.format(top=args.top, labels={k: k.removeprefix("mlp__") for k in space}))
    n_failed = sum(t["error"] is not None for t in result.trials)
    if result.best_params_ is None:
        raise RuntimeError(f"every trial failed; the first: {result.trials[0]['error']}")
    best = {k.removeprefix("mlp__"): v for k, v in result.best_params_.items()}
    print(f"best validation score {result.best_score_:.4f} (trial {result.best_index_}): {best}; "
          f"{len(result.trials)} trials, {n_failed} failed, {result.wall_time:.1f} s"
          f"{' (interrupted)' if result.interrupted else ''}")
    if args.plot:
        print(f"wrote {result.plot(args.plot)}")
    if args.save_best:
        if result.best_estimator_ is None:
            print("not saving: the search was interrupted before the refit", file=sys.stderr)
        else:
            import joblib
            joblib.dump(result.best_estimator_, args.save_best)
            print(f"saved the best pipeline (refit on all {len(y)} samples) to {args.save_best}")
    return result
