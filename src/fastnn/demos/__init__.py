"""The CS231n notes' claims, reproduced with fastnn's own API: `fastnn demo NAME`.

    from fastnn import demos
    result = demos.run("spiral", out="pictures")   # trains, writes pictures/spiral.png
    print(result)                                 # the notes' figures beside fastnn's
    result.numbers["two_layer_accuracy"]

`demos.DEMOS` maps each name to its Demo (description, the notes' claim, the function);
`fast=True` runs a smaller version of the same experiment (the tests use it).
"""
import os
import time

from ._registry import DEMOS, Demo, Result
# each module registers its demos; imported in the notes' order, which --list keeps
from . import basics, initialization, spiral, training, inputs, visualization  # noqa: F401,I001

__all__ = ["DEMOS", "Demo", "Result", "run", "names"]

DPI = 60  # small PNGs for docs/demos/


def names():
    return list(DEMOS)


def run(name, out=None, fast=False, seed=0):
    """Run the demo `name`; with `out` (a directory) write `out/NAME.png` (needs matplotlib, the
    `plot` extra, checked before any work). Returns its Result."""
    if name not in DEMOS:
        raise ValueError(f"unknown demo {name!r}; expected one of {', '.join(DEMOS)}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"demo seed must be an int, got {seed!r}")
    plt = None
    if out is not None:
        from ..plotting import _pyplot
        plt = _pyplot()
        if not os.path.isdir(out):
            raise ValueError(f"demo output directory {out!r} does not exist")
    started = time.perf_counter()
    result = DEMOS[name].function(fast=bool(fast), seed=seed)
    result.seconds = time.perf_counter() - started
    if plt is not None:
        figure = result.draw(plt)
        result.figure = os.path.join(out, f"{name}.png")
        figure.savefig(result.figure, dpi=DPI)
        plt.close(figure)
    return result


def cli_main(args, print_fn=print):
    """`fastnn demo NAME|all [--out DIR] [--fast] [--seed N]` and `fastnn demo --list`."""
    if args.list or args.name is None:
        width = max(map(len, DEMOS))
        for demo in DEMOS.values():
            print_fn(f"{demo.name.ljust(width)}  {demo.description}")
        if not args.list:
            print_fn("\nrun one with `fastnn demo NAME`, or all with `fastnn demo all`")
        return 0
    chosen = names() if args.name == "all" else [args.name]
    for name in chosen:
        if name not in DEMOS:
            raise ValueError(f"unknown demo {name!r}; expected all or one of {', '.join(DEMOS)} "
                             "(fastnn demo --list)")
    from ..plotting import _pyplot
    _pyplot()  # the `plot` extra, before any work
    os.makedirs(args.out, exist_ok=True)
    for name in chosen:
        result = run(name, out=args.out, fast=args.fast, seed=args.seed)
        print_fn(str(result))
        print_fn(f"  wrote {result.figure} ({result.seconds:.1f} s)")
    return 0
