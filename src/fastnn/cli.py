"""The `fastnn` command line.

    fastnn train    train an MLP (default: the 8x8 digits shipped with fastnn; also MNIST,
                    Fashion-MNIST and CIFAR-10 from files on disk) and report every epoch
    fastnn check    the notes' sanity checks and a gradient check on a small model
    fastnn demo     the notes' claims reproduced, each with its number and picture
    fastnn search   random hyperparameter search (log-scaled learning rate and L2, coarse to
                    fine), in local processes or on a Dask cluster
"""
import argparse
import sys

from . import _backend, _cli_commands
from ._activations import CODES as ACTIVATIONS
from ._cli_commands import (CLASSIFICATION_LOSSES, DATASETS, OPTIMIZERS, SCHEDULES,  # noqa: F401
                            build_model, build_optimizer, build_schedule, load_data, load_dataset)
from ._mixed import COMPUTE_DTYPES
from ._version import __version__
from .init import ALIASES, INITIALIZERS

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
    group.add_argument("--compute-dtype", choices=COMPUTE_DTYPES, default="float32",
                       help="arithmetic of the matrix multiplies: float32, or bfloat16 operands "
                            "with float32 accumulation (mixed precision: the weights, and the "
                            "saved model's, stay float32; needs --dtype float32; emulated, and "
                            "slower, on a CPU without bfloat16 instructions)")
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


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            from . import demos
            return demos.cli_main(args)
        if args.command == "search":
            _cli_commands.search_command(args)
            return 0
        if args.command == "train":
            _cli_commands.train(args)
            return 0
        return 0 if _cli_commands.check(args) else 1
    except (ImportError, ValueError, RuntimeError, OSError) as error:
        print(f"fastnn {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"fastnn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
