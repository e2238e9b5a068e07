"""Model files and checkpoints: one .npz archive of arrays plus JSON metadata, never a pickle.

    fnn.save(model, "model.npz")                  # or model.save("model.npz")
    model = fnn.load("model.npz")
    fnn.save_checkpoint("run.npz", model, optimizer, extra={"epoch": 7})
    model, optimizer, extra = fnn.load_checkpoint("run.npz")

The format (version 1) is a zip archive of .npy entries, the layout of numpy.savez:
    __metadata__            0-d unicode array holding a JSON object:
                                format "fastnn", format_version 1, fastnn_version, dtype, seed,
                                training (the model's mode), layers: [{type, config, state}] (the
                                layer's class name, layer.config(), layer.get_extra_state()),
                                optimizer (null or {type, defaults, param_groups, state}),
                                extra (null or the caller's JSON object)
    model/<i>.<name>        the arrays of model.state_dict(): parameters and BatchNorm buffers
    optimizer/<j>/<name>    optimizer state arrays of model parameter j (momentum buffers, moments)
    extra/<k>               arrays that were values inside `extra`
Inside the JSON, an array stored as an entry appears as {"__ndarray__": "<entry name>"}; the
optimizer's parameter groups name parameters by their index in model.parameters().

Reading uses numpy.load(..., allow_pickle=False) after checking every entry's header, so a file
with object arrays (pickles) is refused before anything in it is read, and nothing in a file can
run code. Writes are atomic: the archive goes to a temporary file in the target's directory, is
flushed and fsynced, then renamed over the target; if anything fails the temporary file is removed
and an existing target is untouched. A file written over keeps its permissions, and a save
removes the temporary files of its target that killed processes left behind.
"""
import contextlib
import json
import math
import os
import re
import stat
import time
import warnings
import zipfile
from collections import namedtuple

import numpy as np

from . import optim
from .layers import (ELU, Activation, BatchNorm, Dense, Dropout, Identity, LeakyReLU, Maxout,
                     PReLU, ReLU, Sigmoid, Tanh, as_dtype)
from .model import Sequential

FORMAT = "fastnn"
FORMAT_VERSION = 1
METADATA = "__metadata__"
ARRAY_REF = "__ndarray__"

LAYERS = {cls.__name__: cls for cls in (Dense, Activation, Identity, ReLU, LeakyReLU, ELU,
                                        Sigmoid, Tanh, PReLU, Maxout, Dropout, BatchNorm)}
OPTIMIZERS = {cls.__name__: cls for cls in (optim.SGD, optim.Adagrad, optim.RMSprop, optim.Adam,
                                            optim.AdamW)}
ARRAY_KINDS = "biufc"  # bool, integers, floats, complex: what an .npy stores without pickling

Checkpoint = namedtuple("Checkpoint", ["model", "optimizer", "extra"])
Checkpoint.__doc__ = """What load_checkpoint returns: the model, the optimizer bound to the model's
parameters (None if none was saved) and the `extra` dict (None if none was saved)."""


# -- writing ---------------------------------------------------------------------------------

def save(model, path, optimizer=None, extra=None):
    """Write `model` (architecture, dtype, parameters, BatchNorm statistics, Dropout stream
    positions) to `path` as a fastnn .npz file; with `optimizer` and `extra`, a checkpoint (see
    save_checkpoint). `path` (str or os.PathLike) is used as given: no suffix is added."""
    arrays, metadata = _model_entries(model)
    if optimizer is not None:
        metadata["optimizer"] = _optimizer_entries(optimizer, model, arrays)
    if extra is not None:
        if not isinstance(extra, dict):
            raise TypeError(f"extra must be a dict, got {type(extra).__name__}")
        metadata["extra"] = _to_json(extra, arrays, "extra")
    text = json.dumps(metadata, allow_nan=True)
    _atomic_write(path, lambda f: _write_npz(f, text, arrays))


def save_checkpoint(path, model, optimizer=None, extra=None):
    """Write everything needed to resume a run: the model (as save does), the optimizer (its
    class, defaults, parameter groups with their hyperparameters, and its per-parameter state:
    momentum buffers, moments, step counts) and `extra`.

    extra: a dict of JSON values (str keys; str, int, float including nan/inf, bool, None, lists,
    tuples, dicts, NumPy scalars) in which NumPy arrays of numbers may appear as values anywhere:
    those are stored as entries of the archive and come back as arrays. Tuples come back as lists.
    load_checkpoint returns it as Checkpoint.extra.
    """
    save(model, path, optimizer=optimizer, extra=extra)


def _model_entries(model):
    if not isinstance(model, Sequential):
        raise TypeError(f"fastnn.save: expected a Sequential, got {type(model).__name__}")
    layers = []
    for i, layer in enumerate(model.layers):
        if LAYERS.get(type(layer).__name__) is not type(layer):
            raise TypeError(f"fastnn.save: layer {i} is a {type(layer).__name__}, which the fastnn "
                            f"format cannot describe; it knows {sorted(LAYERS)}")
        layers.append({"type": type(layer).__name__,
                       "config": _to_json(layer.config(), None, f"layer {i} config"),
                       "state": _to_json(layer.get_extra_state(), None, f"layer {i} state")})
    from . import __version__
    seed = model.seed
    seed = int(seed) if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) else None
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "fastnn_version": __version__,
                "dtype": model.dtype.name, "seed": seed, "training": bool(model.training),
                "layers": layers, "optimizer": None, "extra": None}
    arrays = {f"model/{key}": array for key, array in model._state_arrays().items()}
    return arrays, metadata


def _optimizer_entries(optimizer, model, arrays):
    name = type(optimizer).__name__
    if OPTIMIZERS.get(name) is not type(optimizer):
        raise TypeError(f"fastnn.save: cannot save a {name}; the format knows the optimizers "
                        f"{sorted(OPTIMIZERS)}")
    index = {id(p): i for i, p in enumerate(model.parameters())}
    groups = []
    for g in optimizer.param_groups:
        missing = [p.name for p in g["params"] if id(p) not in index]
        if missing:
            raise ValueError(f"fastnn.save: the optimizer updates parameters that are not the "
                             f"model's ({missing}); build it from model.parameters()")
        hyper = {k: v for k, v in g.items() if k != "params"}
        groups.append({**_to_json(hyper, None, f"{name} param group"),
                       "params": [index[id(p)] for p in g["params"]]})
    state = {}
    for p, s in optimizer.state.items():
        if id(p) not in index:
            raise ValueError("fastnn.save: the optimizer holds state for a parameter that is not "
                             "the model's")
        j = index[id(p)]
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
    path = os.fspath(path)
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


# -- reading ---------------------------------------------------------------------------------

def load(path):
    """Rebuild the model saved in `path` (a file from save, Sequential.save or save_checkpoint;
    the optimizer and extra parts of a checkpoint are ignored). Raises ValueError, naming the
    path, for a file that is not a fastnn file, is truncated or corrupted, holds pickled
    objects, comes from a newer format version, or does not match its own architecture."""
    with _Reader(path) as reader:
        return reader.model()


def load_checkpoint(path):
    """Read a file written by save_checkpoint: Checkpoint(model, optimizer, extra), with the
    optimizer rebuilt as the same class bound to the loaded model's parameters (None if the file
    has none) and extra as saved (None if none), its arrays restored."""
    with _Reader(path) as reader:
        model = reader.model()
        return Checkpoint(model, reader.optimizer(model), reader.extra())


class _Reader:
    """One fastnn file opened for reading, with its entries' headers checked and its metadata
    parsed; every failure is a ValueError naming the file."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self._file = open(self.path, "rb")  # a missing file stays a FileNotFoundError
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if getattr(self, "_npz", None) is not None:
            self._npz.close()
        self._file.close()

    def error(self, message):
        return ValueError(f"{self.path}: {message}")

    def _open(self):
        self._npz = None
        if self._file.read(4) != b"PK\x03\x04":
            raise self.error("not a fastnn file (it is not an .npz archive)")
        self._file.seek(0)
        with self._corruption():
            self._npz = np.load(self._file, allow_pickle=False)
            names = self._npz.zip.namelist()
            self.headers = {}
            for member in names:
                if not member.endswith(".npy"):
                    raise self.error(f"not a fastnn file (unexpected entry {member!r})")
                self.headers[member[:-4]] = self._header(member)
        if METADATA not in self.headers:
            raise self.error(f"not a fastnn file (no {METADATA!r} entry)")
        shape, dtype = self.headers[METADATA]
        if dtype.kind != "U" or shape != ():
            raise self.error(f"not a fastnn file ({METADATA!r} is not a text entry)")
        with self._corruption():
            text = str(self._npz[METADATA])
            metadata = json.loads(text)
        if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
            raise self.error("not a fastnn file (its metadata does not name the fastnn format)")
        version = metadata.get("format_version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise self.error(f"unknown format version {version!r}")
        if version > FORMAT_VERSION:
            raise self.error(f"written by a newer fastnn (format {version}); this fastnn reads "
                             f"format {FORMAT_VERSION}")
        self.metadata = metadata
        self._check_entries()

    @contextlib.contextmanager
    def _corruption(self):
        try:
            yield
        except ValueError as error:
            if str(error).startswith(self.path + ": "):
                raise
            raise self.error(f"truncated or corrupted file ({error})") from error
        except Exception as error:  # zipfile, zlib, tokenize, numpy's header parser, ...
            raise self.error(f"truncated or corrupted file ({type(error).__name__}: "
                             f"{error})") from error

    def _header(self, member):
        """(shape, dtype) of an .npy entry from its header alone; object dtypes (pickles) are
        refused here, before any data is read."""
        with self._npz.zip.open(member) as fp:
            version = np.lib.format.read_magic(fp)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read(fp)
            header_size = fp.tell()
        if dtype.hasobject:
            raise self.error(f"entry {member[:-4]!r} holds Python objects (a pickle); fastnn "
                             "files never contain pickles and this one is refused unread")
        size = self._npz.zip.getinfo(member).file_size
        if header_size + math.prod(shape) * dtype.itemsize != size:
            raise self.error(f"truncated or corrupted file (entry {member[:-4]!r} declares shape "
                             f"{shape} of {dtype}, which does not fit its {size} bytes)")
        return shape, dtype

    def _check_entries(self):
        """The entries must be exactly the ones the metadata refers to."""
        with self._malformed():
            self._architecture()
            expected = {METADATA} | set(self.model_keys)
            optimizer = self.metadata.get("optimizer")
            if optimizer is not None:
                expected |= set(_references(optimizer["state"]))
            expected |= set(_references(self.metadata.get("extra")))
        missing, unexpected = expected - set(self.headers), set(self.headers) - expected
        if missing or unexpected:
            raise self.error(f"the arrays do not match the metadata: missing {sorted(missing)}, "
                             f"unexpected {sorted(unexpected)}")

    @contextlib.contextmanager
    def _malformed(self):
        try:
            yield
        except (KeyError, TypeError, AttributeError, IndexError) as error:
            raise self.error(f"malformed metadata ({type(error).__name__}: {error})") from error
        except ValueError as error:
            if str(error).startswith(self.path + ": "):
                raise
            raise self.error(f"malformed metadata ({error})") from error

    def _architecture(self):
        """Build the model the metadata describes (parameters drawn, not yet loaded)."""
        layers = []
        for i, spec in enumerate(self.metadata["layers"]):
            cls = LAYERS.get(spec["type"])
            if cls is None:
                raise self.error(f"layer {i} has unknown type {spec['type']!r}; this fastnn "
                                 f"knows {sorted(LAYERS)}")
            try:
                with _quiet_init():
                    layers.append(cls(**spec["config"]))
            except (TypeError, ValueError) as error:
                raise self.error(f"layer {i} ({spec['type']}): cannot rebuild it from its config "
                                 f"{spec['config']!r}: {error}") from error
        with _quiet_init():
            model = Sequential(*layers, dtype=as_dtype(self.metadata["dtype"]),
                               seed=self.metadata["seed"])
        for layer, spec in zip(model.layers, self.metadata["layers"]):
            layer.set_extra_state(spec["state"])
        model.train(bool(self.metadata["training"]))
        self._model = model
        self.model_keys = {f"model/{key}": array for key, array in model._state_arrays().items()}

    def _array(self, name, shape, dtype):
        """Entry `name`, checked against the shape and dtype it must have."""
        saved_shape, saved_dtype = self.headers[name]
        if saved_shape != tuple(shape) or (dtype is not None and saved_dtype.name != dtype.name):
            raise self.error(f"array {name!r} has shape {saved_shape} and dtype {saved_dtype}, "
                             f"expected shape {tuple(shape)}"
                             + (f" and dtype {dtype}" if dtype is not None else ""))
        with self._corruption():
            return self._npz[name]

    def model(self):
        for name, target in self.model_keys.items():
            target[...] = self._array(name, target.shape, target.dtype)
        return self._model

    def optimizer(self, model):
        spec = self.metadata.get("optimizer")
        if spec is None:
            return None
        with self._malformed():
            cls = OPTIMIZERS.get(spec["type"])
            if cls is None:
                raise self.error(f"unknown optimizer type {spec['type']!r}; this fastnn knows "
                                 f"{sorted(OPTIMIZERS)}")
            params = model.parameters()
            groups, flat = [], {}
            for g in spec["param_groups"]:
                indices = [int(j) for j in g["params"]]
                if any(not 0 <= j < len(params) for j in indices):
                    raise self.error(f"optimizer parameter indices {indices} out of range for a "
                                     f"model with {len(params)} parameters")
                for j in indices:
                    flat[j] = len(flat)
                groups.append({**_hyperparameters(g), "params": [params[j] for j in indices]})
            optimizer = cls(groups, **_hyperparameters(spec["defaults"]))
            state = {}
            for j, entry in spec["state"].items():
                p = params[int(j)]
                state[flat[int(j)]] = {
                    key: (self._array(value[ARRAY_REF], p.shape, p.dtype) if _is_ref(value)
                          else value) for key, value in entry.items()}
            saved = optimizer.state_dict()
            optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
        return optimizer

    def extra(self):
        extra = self.metadata.get("extra")
        with self._malformed():
            return _from_json(extra, lambda name: self._array(name, self.headers[name][0], None))


@contextlib.contextmanager
def _quiet_init():
    """Rebuilding draws parameters that the saved arrays then replace: an init that would warn
    (constant weights) is no news the second time."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*symmetry is never broken", category=UserWarning)
        yield


def _is_ref(value):
    return isinstance(value, dict) and set(value) == {ARRAY_REF} and isinstance(value[ARRAY_REF],
                                                                                str)


def _references(value):
    if _is_ref(value):
        yield value[ARRAY_REF]
    elif isinstance(value, dict):
        for v in value.values():
            yield from _references(v)
    elif isinstance(value, list):
        for v in value:
            yield from _references(v)


def _from_json(value, array):
    if _is_ref(value):
        return array(value[ARRAY_REF])
    if isinstance(value, dict):
        return {k: _from_json(v, array) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v, array) for v in value]
    return value


def _hyperparameters(group):
    """A saved group's hyperparameters; JSON lists back to tuples (betas)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in group.items() if k != "params"}
