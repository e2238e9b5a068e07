"""The `fastnn` command line.

    fastnn train    train an MLP (default: the 8x8 digits shipped with fastnn; also MNIST,
                    Fashion-MNIST and CIFAR-10 from files on disk) and report every epoch
    fastnn check    the notes' sanity checks and a gradient check on a small model
    fastnn demo     the notes' claims reproduced, each with its number and picture
    fastnn search   random hyperparameter search (log-scaled learning rate and L2, coarse to
                    fine), in local processes or on a Dask cluster
"""
import argparse
import os
import sys
import time
import warnings

import numpy as np

from . import _backend, data, losses, optim, regularization
from ._activations import CODES as ACTIVATIONS
from ._version import __version__
from .gradient_check import gradcheck
from .init import INITIALIZERS, ALIASES
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


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" only where the help does not already say what the default is and
    there is a default to state."""

    def _get_help_string(self, action):
        if "default" in (action.help or "") or action.default in (None, False):
            return action.help
        return super()._get_help_string(action)


def _number_in(name, low, high, high_open=True):
    """An argparse type: a float in [low, high) (or [low, high]); the message names the range."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (low <= value < high if high_open else low <= value <= high):
            raise argparse.ArgumentTypeError(
                f"{name} must lie in [{low:g}, {high:g}{')' if high_open else ']'}, got {text}")
        return value
    return parse


def _non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _init(text):
    try:
        return float(text)
    except ValueError:
        return text


def _add_data_arguments(parser):
    group = parser.add_argument_group("data")
    group.add_argument("--dataset", choices=DATASETS, default="digits",
                       help="digits ships with fastnn; the others read the files in "
                            "--data-dir (never downloaded)")
    group.add_argument("--data-dir", default=None,
                       help="directory with the MNIST/Fashion-MNIST IDX files or CIFAR-10's "
                            "cifar-10-batches-py")
    group.add_argument("--val-fraction", type=float, default=0.2,
                       help="fraction of each class held out for validation")
    group.add_argument("--seed", type=int, default=0, help="seeds the split, weights, shuffling")


def _add_model_arguments(parser):
    group = parser.add_argument_group("model")
    group.add_argument("--hidden", type=_positive_int, nargs="*", default=[256],
                       help="hidden layer sizes (none for a linear classifier)")
    group.add_argument("--activation", choices=sorted(ACTIVATIONS), default="relu",
                       help="activation of every hidden layer")
    group.add_argument("--init", type=_init, default=None,
                       help=f"weight init: a float scale or one of "
                            f"{', '.join(sorted(set(INITIALIZERS) | set(ALIASES)))} "
                            "(default: he for the relu family, xavier otherwise)")
    group.add_argument("--batchnorm", action="store_true",
                       help="BatchNorm after every hidden affine layer")
    group.add_argument("--dropout", type=_number_in("--dropout", 0, 1), default=0.3,
                       help="dropout probability (of dropping) after every hidden layer; 0: off")
    group.add_argument("--loss", choices=CLASSIFICATION_LOSSES, default="softmax_cross_entropy",
                       help="data loss: softmax cross-entropy or the multiclass hinge (svm)")
    group.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                       help="floating-point type of the weights and the data")


def _add_runtime_arguments(parser):
    group = parser.add_argument_group("runtime")
    group.add_argument("--backend", choices=list(_backend.BACKENDS), default=None,
                       help="kernels to use (default: compiled when built)")
    group.add_argument("--threads", type=_positive_int, default=None,
                       help="threads for the compiled kernels (default: all cores)")


def build_parser():
    parser = argparse.ArgumentParser(prog="fastnn", description="Fast CPU training of MLPs.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    formatter = _HelpFormatter

    train = commands.add_parser("train", formatter_class=formatter,
                                help="train an MLP and report every epoch")
    _add_data_arguments(train)
    _add_model_arguments(train)
    group = train.add_argument_group("optimization")
    group.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="sgd",
                       help="update rule")
    group.add_argument("--lr", type=float, default=None,
                       help="learning rate (default: 0.05 for sgd, 1e-3 for adam/adamw, 1e-2 "
                            "for rmsprop/adagrad)")
    group.add_argument("--momentum", type=_number_in("--momentum", 0, 1), default=0.9,
                       help="momentum in [0, 1) (sgd and rmsprop)")
    group.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=True,
                       help="Nesterov momentum (sgd)")
    group.add_argument("--betas", type=float, nargs=2, default=(0.9, 0.999), help="adam/adamw")
    group.add_argument("--weight-decay", type=float, default=1e-4,
                       help="the optimizer's weight decay (decoupled for adamw)")
    group.add_argument("--schedule", choices=SCHEDULES, default="cosine",
                       help="learning-rate schedule, stepped once per epoch (cosine: over the "
                            "epochs after the warm-up)")
    group.add_argument("--step-size", type=_positive_int, default=10, help="step schedule")
    group.add_argument("--gamma", type=float, default=0.5, help="step/exponential schedule")
    group.add_argument("--decay", type=float, default=0.1, help="inverse-time schedule")
    group.add_argument("--warmup", type=_non_negative_int, default=0,
                       help="epochs of linear warm-up (fewer than --epochs)")
    group.add_argument("--l2", type=float, default=0.0, help="L2 penalty (reported separately)")
    group.add_argument("--l1", type=float, default=0.0, help="L1 penalty")
    group.add_argument("--max-norm", type=float, default=None, help="max-norm constraint c")
    group = train.add_argument_group("training")
    group.add_argument("--epochs", type=_positive_int, default=30,
                       help="passes over the training data (with --resume: the run's total)")
    group.add_argument("--batch-size", type=_positive_int, default=32, help="minibatch size")
    group.add_argument("--early-stopping", type=_positive_int, default=None, metavar="PATIENCE",
                       help="stop after this many epochs without a better validation loss and "
                            "restore the best epoch")
    group.add_argument("--ema", type=float, default=None, metavar="DECAY",
                       help="evaluate (and keep) an exponential moving average of the weights")
    group.add_argument("--quiet", action="store_true",
                       help="print only the final result (no epoch lines, no warnings)")
    group = train.add_argument_group("files")
    group.add_argument("--save", default=None, help="write the trained model here (.npz)")
    group.add_argument("--checkpoint", default=None,
                       help="write a checkpoint here after every epoch (for --resume)")
    group.add_argument("--resume", default=None, help="continue the run saved in this checkpoint")
    group.add_argument("--plot", default=None, metavar="PREFIX",
                       help="write PREFIX-loss.png and PREFIX-accuracy.png (`plot` extra)")
    _add_runtime_arguments(train)

    check = commands.add_parser("check", formatter_class=formatter,
                                help="sanity checks (initial loss, regularization, overfitting "
                                     "a tiny subset) and a gradient check")
    _add_data_arguments(check)
    _add_model_arguments(check)
    check.add_argument("--l2", type=float, default=1e-3,
                       help="penalty for the 'regularization raises the loss' check")
    _add_runtime_arguments(check)

    demo = commands.add_parser("demo", formatter_class=formatter,
                               help="reproduce a claim of the CS231n notes: a number beside the "
                                    "notes' and a picture (fastnn demo --list)")
    demo.add_argument("name", nargs="?", help="a demo (see --list), or all")
    demo.add_argument("--list", action="store_true", help="list the demos")
    demo.add_argument("--out", default=".", help="directory for NAME.png (`plot` extra)")
    demo.add_argument("--fast", action="store_true", help="a smaller, quicker run (the tests')")
    demo.add_argument("--seed", type=int, default=0, help="seeds data, weights and shuffling")
    _add_search_parser(commands, formatter)
    return parser


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
        ema=args.ema, checkpoint=args.checkpoint, seed=args.seed, progress=not args.quiet)
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
              f"{sum(p.size for p in model.parameters())} parameters, {args.dtype}, "
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


def _add_search_parser(commands, formatter):
    search = commands.add_parser(
        "search", formatter_class=formatter,
        help="random hyperparameter search over learning rate, L2, hidden size and dropout",
        description="Random search (the notes' way): learning rate and L2 sampled on a log "
                    "scale, hidden size from a choice, ranked by validation score; --refine K "
                    "searches again where the best K trials lie. The estimator is a Pipeline of "
                    "scikit-learn's StandardScaler and fastnn.sklearn.MLPClassifier (Adam).")
    _add_data_arguments(search)
    group = search.add_argument_group("search")
    group.add_argument("--trials", type=_positive_int, default=20, help="trials per round")
    group.add_argument("--refine", type=_positive_int, default=None, metavar="K",
                       help="a second round of --trials trials in the region the best K span")
    group.add_argument("--cv", type=int, default=None, metavar="FOLDS",
                       help="score the mean over FOLDS folds (default: one validation split of "
                            "--val-fraction)")
    group.add_argument("--epochs", type=_positive_int, default=30, help="max_iter of every fit")
    group.add_argument("--jobs", type=int, default=1,
                       help="processes on this machine (-1: one per core)")
    group.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run the trials on this Dask scheduler's workers (tcp://host:8786; "
                            "the `dask` extra)")
    group.add_argument("--top", type=_positive_int, default=10, help="trials in the ranking")
    group.add_argument("--quiet", action="store_true", help="no progress bar")
    group = search.add_argument_group("files")
    group.add_argument("--plot", default=None, metavar="PNG",
                       help="score against each hyperparameter (`plot` extra)")
    group.add_argument("--save-best", default=None, metavar="PATH",
                       help="the best pipeline refit on all the data, written with joblib.dump "
                            "(a pickle: load it with joblib.load, from trusted files only)")


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


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            from . import demos
            return demos.cli_main(args)
        if args.command == "search":
            search_command(args)
            return 0
        if args.command == "train":
            train(args)
            return 0
        return 0 if check(args) else 1
    except (ImportError, ValueError, RuntimeError, OSError) as error:
        print(f"fastnn {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"fastnn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
