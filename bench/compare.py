"""Whole training steps of an MLP, end to end: fastnn (compiled "cython" on each GEMM engine, in
float32 and in compute_dtype="bfloat16", and its "numpy" twin) against the GEMM floor, the
step's roofline and PyTorch (float32, and autocast to bfloat16) on CPU.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/compare.py [--shapes tiny,medium]
        [--configs sgd,adam] [--engines openblas,onednn] [--compute-dtypes float32,bfloat16]
        [--threads N] [--quick] [--no-torch] [--json PATH] [--markdown PATH]

(OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, set on some machines, make NumPy's OpenBLAS run slower
kernels: unset them in the command, never inside a script.) A step is forward, softmax
cross-entropy, backward and update of a ReLU MLP with float32 parameters; the shapes, configs and
contenders are in compare_contenders.py, the timing and memory passes in compare_harness.py, the
roofline in compare_roofline.py, the tables in compare_report.py. An engine that does not load
is skipped with the reason printed. fastnn's bfloat16 step runs on the engine's bfloat16 matmul
where it has one (oneDNN on AMX or AVX512-BF16), else by emulation (float32 GEMMs of operands
rounded to bfloat16): the report says which. Prints Markdown (--markdown also writes it to a
file); --json writes every raw figure. Asserts nothing about speed.
"""
import argparse
import datetime
import json
import os
import sys
import time

from compare_contenders import COMPUTE_DTYPES, CONFIGS, ENGINES, SHAPES
from compare_harness import TORCH_PARTS, run_shape, source_version, worker, write_outputs
from compare_report import report


def names(text, known, what):
    chosen = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in chosen if name not in known]
    if unknown or not chosen:
        raise SystemExit(f"unknown {what} {unknown}; expected some of {list(known)}")
    return chosen


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--shapes", default=",".join(SHAPES), help="e.g. tiny,medium")
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help=f"some of {','.join(CONFIGS)}")
    parser.add_argument("--engines", default="openblas,onednn",
                        help=f"fastnn GEMM engines (fnn.set_gemm_engine), some of "
                        f"{','.join(ENGINES)}, each in a process of its own")
    parser.add_argument("--compute-dtypes", default=",".join(COMPUTE_DTYPES),
                        help=f"some of {','.join(COMPUTE_DTYPES)}: float32 times PyTorch fp32 "
                        "(fastnn's float32 step always runs), bfloat16 fastnn's "
                        "compute_dtype='bfloat16' and PyTorch's autocast")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="few steps (a smoke test)")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    parser.add_argument("--json", help="write all raw results to this file")
    parser.add_argument("--markdown", help="also write the printed report to this file")
    parser.add_argument("--worker", metavar="SHAPE", help=argparse.SUPPRESS)
    parser.add_argument("--part", choices=("fastnn", *TORCH_PARTS), default="fastnn",
                        help=argparse.SUPPRESS)
    parser.add_argument("--with-numpy", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.shapes = names(args.shapes, SHAPES, "shapes")
    args.configs = names(args.configs, CONFIGS, "configs")
    args.engines = names(args.engines, ENGINES, "engines")
    args.compute_dtypes = names(args.compute_dtypes, COMPUTE_DTYPES, "compute dtypes")
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        result = worker(args.worker, args.part, args.configs, args.threads, args.quick,
                        args.engines[0], args.with_numpy, args.compute_dtypes)
        print(json.dumps(result))
        return
    started = time.perf_counter()
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    source = source_version()
    results = [run_shape(shape, args) for shape in args.shapes]
    seconds = time.perf_counter() - started
    text = report(results, date, source, seconds, args.threads)
    write_outputs(args, text, dict(date=date, command=sys.argv, source=source, seconds=seconds,
                                   results=results))
    if any("error" in r for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
