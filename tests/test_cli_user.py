"""`fastnn` as a user meets it: each test runs the command in a subprocess, as a shell would."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fnn

pytestmark = pytest.mark.backend_independent  # each run picks its backend itself

SMALL = ["--hidden", "16", "--batch-size", "64"]


def fastnn(*argv, blocked=(), env=None, timeout=180):
    """Run `python -m fastnn.cli ARGV`; `blocked` modules are made unimportable first."""
    if blocked:
        command = [sys.executable, "-c",
                   f"import sys; sys.modules.update(dict.fromkeys({list(blocked)!r})); "
                   f"sys.argv[0] = 'fastnn'; import runpy; "
                   f"runpy.run_module('fastnn.cli', run_name='__main__')", *argv]
    else:
        command = [sys.executable, "-m", "fastnn.cli", *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def lrs(out):
    return [float(line.split(" lr ")[1].split()[0]) for line in out.splitlines()
            if line.startswith("epoch")]


# -- resume ------------------------------------------------------------------------------------

def test_resume_with_more_epochs_refuses_a_cosine_schedule(tmp_path):
    checkpoint = tmp_path / "ck.npz"
    first = fastnn("train", *SMALL, "--epochs", "3", "--checkpoint", str(checkpoint))
    assert first.returncode == 0, first.stderr
    before = checkpoint.read_bytes()
    longer = fastnn("train", *SMALL, "--epochs", "6", "--resume", str(checkpoint))
    assert longer.returncode == 1
    assert "a run of 3 epochs" in longer.stderr and "CosineAnnealingLR(T_max=3" in longer.stderr
    assert "T_max=6" in longer.stderr and "Traceback" not in longer.stderr
    assert not [l for l in longer.stdout.splitlines() if l.startswith("epoch")]
    assert checkpoint.read_bytes() == before


def test_resume_with_another_optimizer_refuses(tmp_path):
    checkpoint = tmp_path / "ck.npz"
    assert fastnn("train", *SMALL, "--epochs", "2", "--schedule", "step",
                  "--checkpoint", str(checkpoint)).returncode == 0
    result = fastnn("train", *SMALL, "--epochs", "3", "--schedule", "step", "--optimizer",
                    "adam", "--resume", str(checkpoint))
    assert result.returncode == 1
    assert "trained with SGD, this run has Adam" in result.stderr
    assert "resume with SGD" in result.stderr


# -- warnings ----------------------------------------------------------------------------------

def test_warnings_are_one_clean_line_each_and_quiet_silences_them():
    result = fastnn("train", *SMALL, "--epochs", "2", "--lr", "1", "--dropout", "0")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines and all(line.startswith("warning: epoch ") for line in lines), lines
    assert "TrainingWarning" not in result.stderr and ".py:" not in result.stderr
    assert "update/weight ratio of W in layer 0: Dense(64 -> 16, relu)" in result.stderr
    model = fnn.Sequential(fnn.Dense(64, 16, activation="relu"), fnn.Dense(16, 10))
    listed = []
    model.summary(print_fn=listed.append)
    assert any(line.startswith("0: Dense(64 -> 16, relu)") for line in listed)
    quiet = fastnn("train", *SMALL, "--epochs", "2", "--lr", "1", "--dropout", "0", "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert quiet.stdout.startswith("validation accuracy")


def test_ema_does_not_report_overfitting_at_epoch_1():
    result = fastnn("train", *SMALL, "--epochs", "2", "--ema", "0.999")
    assert result.returncode == 0, result.stderr
    assert "overfitting" not in result.stderr


def test_warmup_is_not_reported_as_too_high_a_learning_rate():
    # lr 0.1 is not too high for this net (no warning without warm-up); during the warm-up the
    # rate is a tenth of it, which the check must not take for the base rate's effect.
    for warmup in ([], ["--warmup", "3"]):
        result = fastnn("train", *SMALL, "--epochs", "6", "--lr", "0.1", *warmup)
        assert result.returncode == 0, result.stderr
        assert "too high" not in result.stderr, result.stderr


# -- failed runs -------------------------------------------------------------------------------

def test_a_diverged_run_exits_non_zero_and_saves_nothing(tmp_path):
    model = tmp_path / "model.npz"
    result = fastnn("train", *SMALL, "--epochs", "2", "--lr", "1e9", "--save", str(model))
    assert result.returncode == 1
    assert "(failed" in result.stdout and "completed" not in result.stdout
    assert "fastnn train: error: training diverged" in result.stderr
    assert not model.exists()


def test_a_run_whose_relus_all_died_exits_non_zero(tmp_path):
    # A checkpoint whose first layer's biases are so negative that no unit fires, resumed.
    checkpoint = tmp_path / "ck.npz"
    common = [*SMALL, "--schedule", "step", "--dropout", "0"]
    assert fastnn("train", *common, "--epochs", "1", "--checkpoint",
                  str(checkpoint)).returncode == 0
    model, optimizer, extra = fnn.load_checkpoint(checkpoint)
    model.layers[0].b.data[...] = -1e4
    fnn.save_checkpoint(checkpoint, model, optimizer, extra=extra)
    result = fastnn("train", *common, "--epochs", "2", "--resume", str(checkpoint))
    assert result.returncode == 1
    assert "every ReLU unit of layer 0: Dense(64 -> 16, relu) was dead" in result.stderr
    assert "(failed" in result.stdout


# -- outputs checked before the first step -----------------------------------------------------

def test_save_into_a_missing_folder_is_refused_before_training(tmp_path):
    result = fastnn("train", *SMALL, "--save", str(tmp_path / "missing" / "model.npz"))
    assert result.returncode == 1
    assert f"--save {tmp_path / 'missing' / 'model.npz'}: the folder" in result.stderr
    assert "does not exist" in result.stderr and "tmp" not in result.stderr.split("folder")[0][:2]
    assert not [l for l in result.stdout.splitlines() if l.startswith("epoch")]


def test_plot_without_matplotlib_is_refused_before_training(tmp_path):
    result = fastnn("train", *SMALL, "--plot", str(tmp_path / "run"),
                    blocked=("matplotlib", "matplotlib.pyplot"))
    assert result.returncode == 1
    assert 'pip install "fastnn[plot]"' in result.stderr
    assert 'pip install ".[plot]"' in result.stderr
    assert not [l for l in result.stdout.splitlines() if l.startswith("epoch")]


# -- arguments ---------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["--dropout", "-0.1"], "--dropout must lie in [0, 1), got -0.1"),
    (["--dropout", "1.5"], "--dropout must lie in [0, 1), got 1.5"),
    (["--momentum", "2"], "--momentum must lie in [0, 1), got 2"),
    (["--warmup", "100", "--epochs", "5"], "--warmup 100 must be fewer than --epochs 5"),
    (["--warmup", "-1"], "expected an integer >= 0, got -1"),
    (["--compute-dtype", "float16"], "argument --compute-dtype: invalid choice: 'float16'"),
])
def test_bad_arguments_are_refused_with_a_clear_message(argv, message):
    result = fastnn("train", *argv)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not [l for l in result.stdout.splitlines() if l.startswith("epoch")]


def test_help_states_each_default_once_and_every_option_has_help():
    from fastnn.cli import _HelpFormatter, build_parser
    for command in ("train", "check"):
        result = fastnn(command, "--help")
        assert result.returncode == 0
        text = " ".join(result.stdout.split())
        assert "(default: None)" not in text
        assert not re.search(r"default[^()]*\) \(default:", text), text
        assert "(default: 0.3)" in text  # --dropout's, added by the formatter
    parser = build_parser()
    for sub in parser._subparsers._group_actions[0].choices.values():
        formatter = _HelpFormatter(sub.prog)
        for action in sub._actions:
            assert action.help, f"{sub.prog} {action.option_strings} has no help"
            assert formatter._get_help_string(action).count("(default:") <= 1, action.help


def test_check_accepts_the_svm_alias():
    result = fastnn("check", "--loss", "svm", "--hidden", "8")
    assert "invalid choice" not in result.stderr
    assert "gradient check" in result.stdout, result.stderr


def test_version():
    result = fastnn("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"fastnn {fnn.__version__}"


def test_a_typo_in_fastnn_backend_is_one_line_not_a_traceback():
    env = {**os.environ, "FASTNN_BACKEND": "cyton"}
    result = fastnn("train", env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "fastnn: error: FASTNN_BACKEND='cyton' is not a fastnn backend; expected one of "
        "('cython', 'numpy')"]
    # Imported as a library, it stays an ImportError.
    library = subprocess.run([sys.executable, "-c", "import fastnn"], capture_output=True,
                             text=True, env=env, timeout=60)
    assert library.returncode == 1 and "ImportError: FASTNN_BACKEND='cyton'" in library.stderr


def test_every_install_hint_also_works_from_a_clone():
    # `pip install "fastnn[X]"` needs the package index; from a clone it is `pip install ".[X]"`.
    from pathlib import Path
    source = Path(fnn.__file__).parent
    hints = 0
    for path in source.rglob("*.py"):
        text = path.read_text()
        for match in re.finditer(r'pip install \\"fastnn\[(\w+)\]\\"', text):
            hints += 1
            nearby = text[match.end():match.end() + 160]
            assert f'pip install \\".[{match.group(1)}]\\"' in nearby, f"{path}: {match.group(0)}"
    assert hints >= 5
