"""`fastnn train` and `fastnn check`, end to end."""
import struct
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fnn
from fastnn import cli


def run(argv, capsys):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def final_accuracy(out):
    line = [l for l in out.splitlines() if l.startswith("validation accuracy")][-1]
    return float(line.split()[2])


def test_default_run_reaches_97_percent(backend, capsys):
    code, out, _ = run(["train", "--backend", backend], capsys)
    assert code == 0
    assert final_accuracy(out) >= 0.97, out
    epochs = [l for l in out.splitlines() if l.lstrip().startswith("epoch")]
    assert len(epochs) == 30
    assert all(k in epochs[0] for k in ("loss", "train acc", "val loss", "val acc", "lr", "ms"))
    assert f"backend {backend}" in out


@pytest.mark.parametrize("optimizer", sorted(cli.OPTIMIZERS))
@pytest.mark.parametrize("schedule", cli.SCHEDULES)
def test_every_optimizer_and_schedule_trains(optimizer, schedule, capsys):
    code, out, err = run(["train", "--quiet", "--epochs", "3", "--hidden", "32", "--optimizer",
                          optimizer, "--schedule", schedule, "--warmup", "1"], capsys)
    assert code == 0, err
    assert final_accuracy(out) > 0.5


def test_all_options_and_files(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    model_path, checkpoint, plot = tmp_path / "model.npz", tmp_path / "ck.npz", tmp_path / "run"
    code, out, err = run(["train", "--quiet", "--hidden", "32", "16", "--activation", "tanh",
                          "--batchnorm", "--dropout", "0.1", "--optimizer", "adamw", "--lr",
                          "3e-3", "--schedule", "step", "--step-size", "2", "--l2", "1e-4",
                          "--l1", "1e-5", "--max-norm", "3", "--ema", "0.9",
                          "--early-stopping", "3", "--epochs", "4", "--loss",
                          "multiclass_hinge", "--dtype", "float64", "--threads", "1",
                          "--save", str(model_path), "--checkpoint", str(checkpoint),
                          "--plot", str(plot)], capsys)
    assert code == 0, err
    model = fnn.load(model_path)
    assert [type(l).__name__ for l in model.layers] == [
        "Dense", "BatchNorm", "Tanh", "Dropout", "Dense", "BatchNorm", "Tanh", "Dropout", "Dense"]
    assert model.dtype == np.float64
    assert fnn.load_checkpoint(checkpoint).optimizer.__class__.__name__ == "AdamW"
    for suffix in ("-loss.png", "-accuracy.png"):
        assert (tmp_path / f"run{suffix}").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(model_path) in out


def test_resume_continues_the_run(tmp_path, capsys):
    straight, resumed, checkpoint = tmp_path / "a.npz", tmp_path / "b.npz", tmp_path / "ck.npz"
    # A step schedule does not depend on --epochs, so 2 epochs are the start of the 4-epoch run.
    common = ["train", "--quiet", "--hidden", "32", "--seed", "3", "--schedule", "step",
              "--step-size", "1"]
    assert run(common + ["--epochs", "4", "--save", str(straight)], capsys)[0] == 0
    assert run(common + ["--epochs", "2", "--checkpoint", str(checkpoint)], capsys)[0] == 0
    assert run(common + ["--epochs", "4", "--resume", str(checkpoint), "--save", str(resumed)],
               capsys)[0] == 0
    a, b = fnn.load(straight).state_dict(), fnn.load(resumed).state_dict()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.filterwarnings("ignore:compute_dtype='bfloat16' runs by emulation:RuntimeWarning")
def test_compute_dtype_bfloat16_trains_and_saves_a_bfloat16_model(tmp_path, capsys):
    path, checkpoint = tmp_path / "bf16.npz", tmp_path / "ck.npz"
    common = ["train", "--hidden", "32", "--schedule", "step", "--compute-dtype", "bfloat16"]
    code, out, err = run(common + ["--epochs", "2", "--save", str(path),
                                   "--checkpoint", str(checkpoint)], capsys)
    assert code == 0, err
    assert "float32 (bfloat16 compute)" in out
    assert final_accuracy(out) > 0.5
    model = fnn.load(path)
    assert model.compute_dtype == "bfloat16" and model.dtype == np.float32
    assert fnn.load_checkpoint(checkpoint).model.compute_dtype == "bfloat16"
    # a run resumed in another compute dtype would not continue the run: refused
    code, _, err = run(["train", "--quiet", "--hidden", "32", "--schedule", "step", "--epochs",
                        "3", "--resume", str(checkpoint)], capsys)
    assert code == 1
    assert "trained with compute_dtype 'bfloat16', this run has compute_dtype 'float32'" in err
    code, _, err = run(common + ["--quiet", "--epochs", "3", "--resume", str(checkpoint),
                                 "--save", str(path)], capsys)
    assert code == 0, err
    assert fnn.load(path).compute_dtype == "bfloat16"
    code, _, err = run(["train", "--quiet", "--epochs", "1", "--hidden", "8", "--save",
                        str(path)], capsys)
    assert code == 0, err
    assert fnn.load(path).compute_dtype == "float32"  # the default


def write_idx(path, array):
    codes = {np.dtype(np.uint8): 0x08}
    header = struct.pack(">HBB", 0, codes[array.dtype], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())


def test_mnist_from_files(tmp_path, capsys):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3, dtype=np.uint8), 20)
    images = (rng.random((60, 28, 28)) * 50 + labels[:, None, None] * 60).astype(np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels)
    code, out, err = run(["train", "--quiet", "--dataset", "mnist", "--data-dir", str(tmp_path),
                          "--epochs", "20", "--hidden", "16"], capsys)
    assert code == 0, err
    assert final_accuracy(out) >= 0.9


def test_check_command(capsys):
    code, out, _ = run(["check", "--hidden", "32"], capsys)
    assert code == 0
    assert out.count("[ok]") == 3 and "verdict: good" in out and "all checks passed" in out


@pytest.mark.parametrize("argv, message", [
    (["train", "--val-fraction", "2"], "fraction"),
    (["train", "--dataset", "mnist"], "--data-dir"),
    (["train", "--dataset", "cifar10", "--data-dir", "/nonexistent"], "nonexistent"),
    (["train", "--resume", "/nonexistent/ck.npz"], "nonexistent"),
    (["train", "--compute-dtype", "bfloat16", "--dtype", "float64"],
     "--compute-dtype bfloat16 needs --dtype float32 (its weights are float32), got --dtype "
     "float64"),
])
def test_errors_are_reported_not_raised(argv, message, capsys):
    code, _, err = run(argv, capsys)
    assert code == 1
    assert message in err and "Traceback" not in err


def test_console_script():
    result = subprocess.run([sys.executable, "-m", "fastnn.cli", "train", "--quiet", "--epochs",
                             "1", "--hidden", "8"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("validation accuracy")


def test_train_runs_without_scikit_learn_tqdm_or_matplotlib():
    # The main job on a bare install: the digits ship inside fastnn, progress needs no tqdm.
    blocked = ("sklearn", "tqdm", "tqdm.auto", "matplotlib")
    code = (f"import sys; sys.modules.update(dict.fromkeys({blocked!r})); "
            "from fastnn.cli import main; "
            "sys.exit(main(['train', '--epochs', '2', '--hidden', '32']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "digits (8x8, UCI, shipped with fastnn)" in result.stdout
    epochs = [l for l in result.stdout.splitlines() if l.startswith("epoch")]
    assert [l[:11] for l in epochs] == ["epoch   1/2", "epoch   2/2"]
    assert final_accuracy(result.stdout) > 0.8
