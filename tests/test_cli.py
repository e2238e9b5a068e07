import io
import subprocess
import sys

import pytest

from fastnn import cli


def test_default_run_reaches_95_percent(backend):
    pytest.importorskip("sklearn")
    out = io.StringIO()
    args = cli.build_parser().parse_args(["train", "--backend", backend])
    accuracy = cli.train(args, out=out)
    lines = out.getvalue().splitlines()
    assert accuracy >= 0.95, out.getvalue()
    epoch_lines = [l for l in lines if l.startswith("epoch")]
    assert len(epoch_lines) == 20
    assert all(k in epoch_lines[0] for k in ("loss", "train acc", "val acc", "ms"))
    assert f"backend {backend}" in out.getvalue()


@pytest.mark.backend_independent
def test_console_script_options_and_errors():
    pytest.importorskip("sklearn")
    ok = subprocess.run([sys.executable, "-m", "fastnn.cli", "train", "--hidden", "32",
                         "--activation", "tanh", "--epochs", "2", "--batch-size", "64",
                         "--lr", "0.1", "--momentum", "0.5", "--seed", "3", "--dtype", "float64",
                         "--threads", "1"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "64 -> 32 -> 10 (tanh)" in ok.stdout and "float64" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "fastnn.cli", "train", "--val-fraction", "2"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "fraction" in bad.stderr
