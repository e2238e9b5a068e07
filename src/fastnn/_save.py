"""Writing fastnn files (the format is described in fastnn.io): a model's metadata and arrays,
written atomically. Below the model: Sequential.save calls it, fastnn.io re-exports it."""
import contextlib
import io
import json
import os
import re
import stat
import time
import zipfile

import numpy as np

from . import optim
from ._validation import check_path
from ._version import __version__
from .layers import LAYERS

FORMAT = "fastnn"
FORMAT_VERSION = 1
METADATA = "__metadata__"
ARRAY_REF = "__ndarray__"
ARRAY_KINDS = "biufc"  # bool, integers, floats, complex: what an .npy stores without pickling

OPTIMIZERS = {cls.__name__: cls for cls in (optim.SGD, optim.Adagrad, optim.RMSprop, optim.Adam,
                                            optim.AdamW)}


def write(model, path, optimizer=None, extra=None):
    """Write `model` (a Sequential), with `optimizer` and `extra` if given, to `path`."""
    text, arrays = _entries(model, optimizer, extra)
    _atomic_write(path, lambda f: _write_npz(f, text, arrays))


def to_bytes(model, optimizer=None, extra=None):
    """The bytes write(model, path, optimizer, extra) would write."""
    text, arrays = _entries(model, optimizer, extra)
    buffer = io.BytesIO()
    _write_npz(buffer, text, arrays)
    return buffer.getvalue()


def _entries(model, optimizer, extra):
    """(metadata JSON text, {entry name: array}) of a model file."""
    arrays, metadata = _model_entries(model)
    if optimizer is not None:
        metadata["optimizer"] = _optimizer_entries(optimizer, model, arrays)
    if extra is not None:
        if not isinstance(extra, dict):
            raise TypeError(f"extra must be a dict, got {type(extra).__name__}")
        metadata["extra"] = _to_json(extra, arrays, "extra")
    return json.dumps(metadata, allow_nan=True), arrays


def _model_entries(model):
    layers = []
    for i, layer in enumerate(model.layers):
        if LAYERS.get(type(layer).__name__) is not type(layer):
            raise TypeError(f"fastnn.save: layer {i} is a {type(layer).__name__}, which the fastnn "
                            f"format cannot describe; it knows {sorted(LAYERS)}")
        spec = {"type": type(layer).__name__,
                "config": _to_json(layer.config(), None, f"layer {i} config"),
                "state": _to_json(layer.get_extra_state(), None, f"layer {i} state")}
        frozen = [p.name for p in layer.parameters() if not p.requires_grad]
        if frozen:  # (an optional key: files without it load as before)
            spec["frozen"] = frozen
        layers.append(spec)
    seed = model.seed
    seed = int(seed) if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) else None
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "fastnn_version": __version__,
                "dtype": model.dtype.name, "compute_dtype": model.compute_dtype, "seed": seed,
                "training": bool(model.training),
                "layers": layers, "optimizer": None, "extra": None}
    arrays = {f"model/{key}": array for key, array in model._state_arrays().items()}
    return arrays, metadata


def _optimizer_entries(optimizer, model, arrays):
    name = type(optimizer).__name__
    if OPTIMIZERS.get(name) is not type(optimizer):
        raise TypeError(f"fastnn.save: cannot save a {name}; the format knows the optimizers "
                        f"{sorted(OPTIMIZERS)}")
    index = {id(p): i for i, p in enumerate(model.parameters())}
    params = [p for g in optimizer.param_groups for p in g["params"]]
    missing = [p.name for p in params if id(p) not in index]
    if missing:
        raise ValueError(f"fastnn.save: the optimizer updates parameters that are not the "
                         f"model's ({missing}); build it from model.parameters()")
    if not {id(p) for p in optimizer.state} <= {id(p) for p in params}:
        raise ValueError("fastnn.save: the optimizer holds state for a parameter that is not "
                         "the model's")
    # state_dict numbers the parameters in the optimizer's group order; the file numbers them by
    # their place in model.parameters(), so that it loads into a model alone.
    saved = optimizer.state_dict()
    to_model = [index[id(p)] for p in params]
    groups = [{**_to_json({k: v for k, v in g.items() if k != "params"}, None,
                          f"{name} param group"),
               "params": [to_model[i] for i in g["params"]]} for g in saved["param_groups"]]
    state = {}
    for i, s in saved["state"].items():
        j = to_model[i]
        entry = {}
        for key, value in s.items():
            if isinstance(value, np.ndarray):
                arrays[f"optimizer/{j}/{key}"] = value
                entry[key] = {ARRAY_REF: f"optimizer/{j}/{key}"}
            else:
                entry[key] = _to_json(value, None, f"{name} state {key!r}")
        state[str(j)] = entry
    return {"type": name, "defaults": _to_json(optimizer.defaults, None, f"{name} defaults"),
            "param_groups": groups, "state": state}


def _to_json(value, arrays, where):
    """`value` as JSON data, exactly: refuses what JSON would change (non-str keys) or cannot hold.
    Arrays go into `arrays` (when given) as entries "extra/<k>" and leave a reference behind."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return value.item()
    if isinstance(value, np.ndarray):
        if arrays is None:
            raise TypeError(f"{where}: arrays are not allowed here")
        if value.dtype.kind not in ARRAY_KINDS:
            raise TypeError(f"{where}: cannot store an array of dtype {value.dtype} (only bool, "
                            "integer, float and complex arrays; fastnn files hold no pickles)")
        name = f"extra/{sum(key.startswith('extra/') for key in arrays)}"
        arrays[name] = value
        return {ARRAY_REF: name}
    if isinstance(value, (list, tuple)):
        return [_to_json(v, arrays, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        if set(value) == {ARRAY_REF}:
            raise TypeError(f"{where}: a dict whose only key is {ARRAY_REF!r} is reserved")
        out = {}
        for key, v in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: key {key!r} is not a str (JSON keys are strings; it "
                                "would come back changed)")
            out[key] = _to_json(v, arrays, f"{where}[{key!r}]")
        return out
    raise TypeError(f"{where}: cannot store a {type(value).__name__} (JSON values and NumPy "
                    "arrays only)")


def _write_npz(f, metadata_text, arrays):
    """The archive numpy.savez writes, with the metadata first (deflated: it is text) and every
    array stored as it is, through numpy's .npy writer with pickling off."""
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        info = zipfile.ZipInfo(METADATA + ".npy")
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as entry:
            np.lib.format.write_array(entry, np.array(metadata_text), allow_pickle=False)
        for name, array in arrays.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, np.asarray(array), allow_pickle=False)


def _atomic_write(path, write):
    """Call write(f) on a fresh temporary file beside `path`, fsync it and rename it onto `path`.
    On any failure (KeyboardInterrupt included) the temporary file is removed and `path` keeps
    its old content. A file written over keeps its permission bits. The temporary file is named
    .<name>.<pid>-<random>.tmp: a save first removes those of the same target left by processes
    that are gone (killed mid-save), never one that a live process may still be writing."""
    path = check_path("save: path", path)
    directory, base = os.path.split(os.path.abspath(path))
    _remove_stale_temporaries(directory, base)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f".{base}.{os.getpid()}-{os.urandom(4).hex()}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)  # the umask applies, as for any new file
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"could not create a temporary file beside {path}")
    try:
        with os.fdopen(fd, "wb") as f:
            with contextlib.suppress(FileNotFoundError):
                os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


_LEGACY_TEMPORARY_AGE = 3600.0  # seconds: temporaries named without a pid are removed this old


def _remove_stale_temporaries(directory, base):
    """Remove .<base>.<pid>-<8 hex>.tmp files whose process no longer exists (and, where
    processes cannot be probed, or for the older .<base>.<8 hex>.tmp names, those not written
    to for an hour). Best effort: a file that cannot be removed stays."""
    pattern = re.compile(r"\." + re.escape(base) + r"\.(?:(\d+)-)?[0-9a-f]{8}\.tmp\Z")
    try:
        names = os.listdir(directory or ".")
    except OSError:
        return
    now = time.time()
    for name in names:
        match = pattern.match(name)
        if match is None:
            continue
        candidate = os.path.join(directory, name)
        pid = match.group(1)
        if pid is not None and os.name == "posix":
            if not _process_exists(int(pid)):
                with contextlib.suppress(OSError):
                    os.unlink(candidate)
            continue
        with contextlib.suppress(OSError):
            if now - os.stat(candidate).st_mtime > _LEGACY_TEMPORARY_AGE:
                os.unlink(candidate)


def _process_exists(pid):
    if pid == os.getpid():
        return True  # another thread of this process may be saving the same target
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, under another user (EPERM), or cannot be told: keep its file
        return True
    return True


def _fsync_directory(directory):
    """Make the rename durable (POSIX); best effort, and a no-op where directories cannot be
    opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
