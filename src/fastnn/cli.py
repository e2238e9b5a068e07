"""The `fastnn` command line: `fastnn train` trains an MLP on the 8x8 handwritten digits."""
import argparse
import sys
import time

import numpy as np

from . import _backend
from ._kernels._checks import ACTIVATIONS
from .data import load_digits, stratified_split
from .layers import Dense
from .losses import softmax_cross_entropy
from .model import Sequential
from .optim import SGD
from .preprocessing import StandardScaler


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(prog="fastnn", description="Fast CPU training of MLPs.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train", help="train an MLP on the 8x8 handwritten digits (scikit-learn's copy)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    train.add_argument("--hidden", type=_positive_int, nargs="*", default=[128],
                       help="hidden layer sizes (none for a linear softmax classifier)")
    train.add_argument("--activation", choices=sorted(ACTIVATIONS), default="relu")
    train.add_argument("--lr", type=float, default=0.05, help="learning rate")
    train.add_argument("--momentum", type=float, default=0.9)
    train.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=True)
    train.add_argument("--weight-decay", type=float, default=1e-4)
    train.add_argument("--epochs", type=_positive_int, default=20)
    train.add_argument("--batch-size", type=_positive_int, default=32)
    train.add_argument("--val-fraction", type=float, default=0.2,
                       help="fraction of each class held out for validation")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    train.add_argument("--backend", choices=list(_backend.BACKENDS), default=None,
                       help="kernels to use (default: compiled when built)")
    train.add_argument("--threads", type=_positive_int, default=None,
                       help="threads for the compiled kernels (default: all cores)")
    return parser


def accuracy(model, X, y):
    return float(np.mean(model.predict(X) == y))


def train(args, out=sys.stdout):
    """Run `fastnn train`; returns the final validation accuracy."""
    if args.backend:
        _backend.set_backend(args.backend)
    if args.threads:
        _backend.set_num_threads(args.threads)
    X, y = load_digits()
    train_idx, val_idx = stratified_split(y, args.val_fraction, seed=args.seed)
    scaler = StandardScaler().fit(X[train_idx])
    X_train, y_train = scaler.transform(X[train_idx]).astype(args.dtype), y[train_idx]
    X_val, y_val = scaler.transform(X[val_idx]).astype(args.dtype), y[val_idx]
    n_classes = int(y.max()) + 1

    sizes = [X.shape[1], *args.hidden]
    layers = [Dense(a, b, activation=args.activation) for a, b in zip(sizes, sizes[1:])]
    model = Sequential(*layers, Dense(sizes[-1], n_classes), dtype=args.dtype, seed=args.seed)
    optimizer = SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                    nesterov=args.nesterov and args.momentum > 0, weight_decay=args.weight_decay)
    rng = np.random.default_rng(args.seed)
    print(f"digits: {len(train_idx)} train / {len(val_idx)} validation samples, "
          f"{X.shape[1]} features, {n_classes} classes", file=out)
    print(f"model: {' -> '.join(map(str, sizes + [n_classes]))} ({args.activation}), "
          f"{sum(p.size for p in model.parameters())} parameters, {args.dtype}, backend "
          f"{_backend.get_backend()}, {_backend.get_num_threads()} threads", file=out)
    started = time.perf_counter()
    val_acc = 0.0
    for epoch in range(1, args.epochs + 1):
        epoch_start = time.perf_counter()
        order = rng.permutation(len(X_train))
        losses = []
        model.train()
        for start in range(0, len(order), args.batch_size):
            batch = order[start:start + args.batch_size]
            scores = model.forward(X_train[batch])
            loss, dscores = softmax_cross_entropy(scores, y_train[batch])
            model.zero_grad()
            model.backward(dscores)
            optimizer.step()
            losses.append(loss)
        model.eval()
        train_acc, val_acc = accuracy(model, X_train, y_train), accuracy(model, X_val, y_val)
        print(f"epoch {epoch:3d}/{args.epochs}  loss {np.mean(losses):.4f}  train acc "
              f"{train_acc:.4f}  val acc {val_acc:.4f}  "
              f"{1000 * (time.perf_counter() - epoch_start):.0f} ms", file=out)
    print(f"validation accuracy {val_acc:.4f} after {args.epochs} epochs in "
          f"{time.perf_counter() - started:.2f} s", file=out)
    return val_acc


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            train(args)
    except (ImportError, ValueError, RuntimeError) as error:
        print(f"fastnn {args.command}: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
