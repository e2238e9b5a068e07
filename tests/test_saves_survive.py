"""Saves that survive being killed or interrupted: a SIGKILL mid-save never damages the file and
its temporary is cleaned by the next save; re-saving keeps the file's permissions; Ctrl-C during
a best-checkpoint write never leaves best.npz behind the model."""
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import fastnn as fnn

pytestmark = pytest.mark.backend_independent

posix = pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals and permissions")


def _model():
    return fnn.Sequential(fnn.Dense(4, 8, activation="relu"), fnn.Dense(8, 3), seed=0)


def _temporaries(path):
    return sorted(n for n in os.listdir(path.parent) if n.startswith(f".{path.name}.")
                  and n.endswith(".tmp"))


def _run(code, args=()):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@posix
def test_resaving_keeps_the_permissions(tmp_path):
    path = tmp_path / "model.npz"
    fnn.save(_model(), path)
    os.chmod(path, 0o600)
    fnn.save(_model(), path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    os.chmod(path, 0o640)
    fnn.save_checkpoint(path, _model())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


@posix
def test_a_save_removes_only_stale_temporaries_of_its_target(tmp_path):
    path = tmp_path / "model.npz"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = int(gone.stdout)  # that process has exited and been reaped
    names = {
        "dead": f".model.npz.{dead}-0123abcd.tmp",
        "alive": f".model.npz.{os.getppid()}-0123abcd.tmp",  # a live process: may be writing
        "own": f".model.npz.{os.getpid()}-89abcdef.tmp",  # another thread of ours: may be too
        "legacy_old": ".model.npz.deadbeef.tmp",
        "legacy_new": ".model.npz.cafef00d.tmp",
        "other_target": f".other.npz.{dead}-0123abcd.tmp",
        "not_ours": f".model.npz.{dead}-0123abcd.tmp.keep",
    }
    for name in names.values():
        (tmp_path / name).write_bytes(b"partial")
    old = time.time() - 7200
    os.utime(tmp_path / names["legacy_old"], (old, old))
    fnn.save(_model(), path)
    left = set(os.listdir(tmp_path))
    assert names["dead"] not in left and names["legacy_old"] not in left
    for kept in ("alive", "own", "legacy_new", "other_target", "not_ours"):
        assert names[kept] in left, kept
    fnn.load(path)


SAVER = """
    import sys
    import fastnn as fnn
    model = fnn.Sequential(fnn.Dense(512, 1024), fnn.Dense(1024, 1024), fnn.Dense(1024, 10),
                           seed=0)
    print("ready", flush=True)
    while True:
        fnn.save(model, sys.argv[1])
"""


@posix
def test_sigkill_mid_save_never_damages_the_file_and_the_next_save_cleans_up(tmp_path):
    path = tmp_path / "model.npz"
    rng = np.random.default_rng(0)
    left_behind = 0
    for attempt in range(8):
        saver = _run(SAVER, args=[str(path)])
        assert saver.stdout.readline().strip() == "ready"
        time.sleep(0.15 + 0.2 * rng.random())
        saver.send_signal(signal.SIGKILL)
        saver.wait()
        saver.stdout.close()
        saver.stderr.close()
        if path.exists():
            fnn.load(path)  # whatever the moment of the kill, the file is whole
        left_behind += len(_temporaries(path))
        if left_behind >= 3:
            break
    assert left_behind >= 1  # the kills did land mid-save
    fnn.save(_model(), path)
    assert _temporaries(path) == []
    fnn.load(path)


TRAINER = """
    import json, os, signal, sys
    import numpy as np
    import fastnn as fnn
    from fastnn import io as fio

    directory, mode = sys.argv[1], sys.argv[2]
    best_path = os.path.join(directory, "best.npz")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 64)).astype(np.float32)
    y = (X[:, :10].argmax(axis=1)).astype(np.int64)
    model = fnn.Sequential(fnn.Dense(64, 256, activation="relu"), fnn.Dense(256, 10), seed=0)
    trainer = fnn.Trainer(model, fnn.optim.SGD(model.parameters(), lr=0.01), batch_size=64,
                          epochs=400, progress=False, monitor=False, seed=0,
                          checkpoint=os.path.join(directory, "last.npz"),
                          best_checkpoint=best_path)
    if mode == "inside":  # Ctrl-C arrives while the second best checkpoint is being written
        from fastnn import _save
        atomic, calls = _save._atomic_write, []

        def hooked(path, write):
            if os.fspath(path) == best_path:
                calls.append(1)
                if len(calls) == 2:
                    def interrupted(f):
                        os.kill(os.getpid(), signal.SIGINT)
                        return write(f)
                    return atomic(path, interrupted)
            return atomic(path, write)

        _save._atomic_write = hooked
    else:
        trainer.callbacks = [type("Ready", (), {"on_epoch": lambda self, t, e, h: print(
            "epoch", e, flush=True) if e == 1 else None})()]
    history = trainer.fit(X, y)
    saved = fnn.load_checkpoint(best_path)
    same = all(np.array_equal(v, saved.model.state_dict()[k])
               for k, v in model.state_dict().items())
    print(json.dumps({"stop": history.stop_reason, "same": same,
                      "best_epoch": history.best_epoch,
                      "file_epoch": saved.extra["trainer"]["epoch"]}), flush=True)
"""


def _outcome(process):
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


@posix
def test_ctrl_c_during_the_best_checkpoint_write_finishes_it(tmp_path):
    result = _outcome(_run(TRAINER, args=[str(tmp_path), "inside"]))
    assert result == {"stop": "interrupted", "same": True, "best_epoch": 2, "file_epoch": 2}
    assert _temporaries(tmp_path / "best.npz") == []


@posix
def test_ctrl_c_at_any_moment_leaves_best_npz_equal_to_the_model(tmp_path):
    rng = np.random.default_rng(1)
    for trial in range(3):
        directory = tmp_path / str(trial)
        directory.mkdir()
        process = _run(TRAINER, args=[str(directory), "timed"])
        assert process.stdout.readline().startswith("epoch 1")
        time.sleep(0.05 + 0.3 * rng.random())
        process.send_signal(signal.SIGINT)
        result = _outcome(process)
        assert result["stop"] == "interrupted"
        assert result["same"] and result["file_epoch"] == result["best_epoch"]
