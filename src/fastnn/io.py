"""Model files and checkpoints: one .npz archive of arrays plus JSON metadata, never a pickle.

    fnn.save(model, "model.npz")                  # or model.save("model.npz")
    model = fnn.load("model.npz")
    fnn.save_checkpoint("run.npz", model, optimizer, extra={"epoch": 7})
    model, optimizer, extra = fnn.load_checkpoint("run.npz")

The format (version 1) is a zip archive of .npy entries, the layout of numpy.savez:
    __metadata__            0-d unicode array holding a JSON object:
                                format "fastnn", format_version 1, fastnn_version, dtype, seed,
                                training (the model's mode), layers: [{type, config, state}] (the
                                layer's class name, layer.config(), layer.get_extra_state(); and
                                "frozen", the names of its frozen parameters, when there are any),
                                optimizer (null or {type, defaults, param_groups, state}),
                                extra (null or the caller's JSON object)
    model/<i>.<name>        the arrays of model.state_dict(): parameters and BatchNorm buffers
    optimizer/<j>/<name>    optimizer state arrays of model parameter j (momentum buffers, moments)
    extra/<k>               arrays that were values inside `extra`
Inside the JSON, an array stored as an entry appears as {"__ndarray__": "<entry name>"}; the
optimizer's parameter groups name parameters by their index in model.parameters().

Reading never unpickles and never trusts a size it has not checked: the zip directory and every
entry's .npy header are checked against each other and against the metadata (its structure, types
and the array shapes its layers imply) before anything is allocated, so a file with object arrays
(pickles), lying sizes or a declared architecture its arrays do not match is refused unread; each
entry is then decompressed a chunk at a time up to exactly its declared size, straight into the
model's arrays, and its values checked (finite; variances and averages of squares >= 0).

Writes are atomic: the archive goes to a temporary file in the target's directory, is flushed
and fsynced, then renamed over the target; if anything fails the temporary file is removed and
an existing target is untouched. A file written over keeps its permissions, and a save removes
the temporary files of its target that killed processes left behind.
"""
import contextlib
import io
import json
import math
import os
import re
import stat
import struct
import time
import zipfile
import zlib
from collections import namedtuple

import numpy as np

from . import init, optim
from ._validation import check_path
from .layers import (ELU, Activation, BatchNorm, Dense, Dropout, Identity, LeakyReLU, Maxout,
                     Parameter, PReLU, ReLU, Sigmoid, Tanh, as_dtype)
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
    text, arrays = _entries(model, optimizer, extra)
    _atomic_write(path, lambda f: _write_npz(f, text, arrays))


def to_bytes(model, optimizer=None, extra=None):
    """The bytes save(model, path, optimizer, extra) would write: a fastnn .npz file in memory
    (read it back with from_bytes)."""
    text, arrays = _entries(model, optimizer, extra)
    buffer = io.BytesIO()
    _write_npz(buffer, text, arrays)
    return buffer.getvalue()


def from_bytes(data):
    """Checkpoint(model, optimizer, extra) from the bytes of a fastnn file, checked as
    load_checkpoint checks a file."""
    with _Reader(io.BytesIO(bytes(data))) as reader:
        model = reader.model()
        return Checkpoint(model, reader.optimizer(model), reader.extra())


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
        spec = {"type": type(layer).__name__,
                "config": _to_json(layer.config(), None, f"layer {i} config"),
                "state": _to_json(layer.get_extra_state(), None, f"layer {i} state")}
        frozen = [p.name for p in layer.parameters() if not p.requires_grad]
        if frozen:  # (an optional key: files without it load as before)
            spec["frozen"] = frozen
        layers.append(spec)
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


# What a file can make the reader allocate is bounded before anything is decompressed: every
# entry's zip sizes must agree with its .npy header and with the metadata, stored entries must lie
# in the file, and deflated array entries together may expand at most MAX_DEFLATE_RATIO-fold
# (fastnn stores arrays uncompressed and weights hardly compress, so only a zip bomb goes past
# it; the slack lets small files whose zero biases compress well through).
MAX_DEFLATE_RATIO = 32
DEFLATE_SLACK = 1 << 20
MAX_METADATA_BYTES = 1 << 24  # 4 M characters of JSON (an .npy string holds 4 bytes a character)
CHUNK = 1 << 20  # bytes read (and decompressed) at a time
_Entry = namedtuple("_Entry", ["shape", "dtype", "fortran_order", "header_size"])
# Optimizer state entries a file may hold, per optimizer (every option on); "step" is an integer
# count, the others arrays of the parameter's shape, those below sums or averages of squares.
OPTIMIZER_STATE = {"SGD": {"momentum_buffer"}, "Adagrad": {"step", "sum"},
                   "RMSprop": {"step", "square_avg", "grad_avg", "momentum_buffer"},
                   "Adam": {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
                   "AdamW": {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}}
_NONNEGATIVE_STATE = {"sum", "square_avg", "exp_avg_sq", "max_exp_avg_sq"}
_NONNEGATIVE_BUFFERS = {"running_var"}


class _Reader:
    """One fastnn file opened for reading. Opening checks everything that can be checked without
    reading the arrays: the zip entries against their .npy headers, the metadata's structure and
    types, and every array the metadata declares against its entry's header, so that nothing is
    allocated for a lying file; reading an entry then decompresses exactly its declared bytes and
    checks its values. Every failure is a ValueError naming the file."""

    def __init__(self, path):
        if isinstance(path, io.BytesIO):
            self.path, self._file = "<fastnn bytes>", path
        else:
            self.path = check_path("load: path", path)
            self._file = open(self.path, "rb")  # a missing file stays a FileNotFoundError
        self._zip = None
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
        if self._zip is not None:
            self._zip.close()
        self._file.close()

    def error(self, message):
        return ValueError(f"{self.path}: {message}")

    def invalid(self, where, value, accepts):
        text = repr(value)
        text = text if len(text) <= 80 else text[:77] + "..."
        return self.error(f"invalid {where}: {text}; expected {accepts}")

    def _open(self):
        if self._file.read(4) != b"PK\x03\x04":
            raise self.error("not a fastnn file (it is not an .npz archive)")
        size = self._file.seek(0, os.SEEK_END)
        self._file.seek(0)
        with self._corruption():
            self._zip = zipfile.ZipFile(self._file)
            infos = self._zip.infolist()
        self._check_members(infos, size)
        self._infos = {info.filename[:-4]: info for info in infos}
        self.headers = {}
        with self._corruption():
            for name, info in self._infos.items():
                self.headers[name] = self._header(name, info)
        self._check_expansion(infos)
        if METADATA not in self.headers:
            raise self.error(f"not a fastnn file (no {METADATA!r} entry)")
        entry = self.headers[METADATA]
        if entry.dtype.kind != "U" or entry.shape != ():
            raise self.error(f"not a fastnn file ({METADATA!r} is not a text entry)")
        with self._corruption():
            metadata = json.loads(str(self._read(METADATA)))
        if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
            raise self.error("not a fastnn file (its metadata does not name the fastnn format)")
        version = metadata.get("format_version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise self.error(f"unknown format version {version!r}")
        if version > FORMAT_VERSION:
            raise self.error(f"written by a newer fastnn (format {version}); this fastnn reads "
                             f"format {FORMAT_VERSION}")
        self.metadata = metadata
        with self._malformed():
            self._check_metadata()
            self._check_entries()
            self._architecture()

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

    # -- the archive, before anything is decompressed

    def _check_members(self, infos, size):
        """The zip directory alone: .npy entries, each once, stored or deflated, with sizes that
        fit the file."""
        seen = set()
        for info in infos:
            name = info.filename
            if not name.endswith(".npy"):
                raise self.error(f"not a fastnn file (unexpected entry {name!r})")
            if name in seen:
                raise self.error(f"truncated or corrupted file (entry {name[:-4]!r} appears "
                                 "twice)")
            seen.add(name)
            if info.flag_bits & 0x1:
                raise self.error(f"entry {name[:-4]!r} is encrypted; fastnn files never are")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise self.error(f"entry {name[:-4]!r} uses zip compression method "
                                 f"{info.compress_type}; fastnn reads stored (0) or deflated "
                                 "(8) entries only")
            if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
                raise self.error(f"truncated or corrupted file (stored entry {name[:-4]!r} "
                                 f"claims {info.file_size} bytes in {info.compress_size})")
        claimed = sum(info.compress_size for info in infos)
        if claimed > size:
            raise self.error(f"truncated or corrupted file (its entries claim {claimed} bytes; "
                             f"the file has {size})")

    def _header(self, name, info):
        """An entry's .npy header alone; object dtypes (pickles) are refused here, before any
        data is read, and the header must account for the entry's size exactly."""
        fp = _Member(self._file, info, self.error)
        version = np.lib.format.read_magic(fp)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        shape, fortran_order, dtype = read(fp)
        header_size = fp.position
        if dtype.hasobject:
            raise self.error(f"entry {name!r} holds Python objects (a pickle); fastnn "
                             "files never contain pickles and this one is refused unread")
        if name != METADATA and dtype.kind not in ARRAY_KINDS:
            raise self.error(f"entry {name!r} holds {dtype} values; fastnn files hold bool, "
                             "integer, float and complex arrays only")
        if header_size + math.prod(shape) * dtype.itemsize != info.file_size:
            raise self.error(f"truncated or corrupted file (entry {name!r} declares shape "
                             f"{shape} of {dtype}, which does not fit its {info.file_size} "
                             "bytes)")
        return _Entry(shape, dtype, bool(fortran_order), header_size)

    def _check_expansion(self, infos):
        meta = self._infos.get(METADATA)
        if meta is not None and meta.file_size > MAX_METADATA_BYTES:
            raise self.error(f"the metadata entry declares {meta.file_size} bytes, more than "
                             f"the {MAX_METADATA_BYTES} a fastnn file's metadata may have")
        deflated = [info for info in infos if info.compress_type == zipfile.ZIP_DEFLATED
                    and info is not meta]
        expanded = sum(info.file_size for info in deflated)
        compressed = sum(info.compress_size for info in deflated)
        if expanded > MAX_DEFLATE_RATIO * compressed + DEFLATE_SLACK:
            raise self.error(f"its compressed arrays would expand from {compressed} to "
                             f"{expanded} bytes, more than {MAX_DEFLATE_RATIO}-fold (fastnn "
                             "stores arrays uncompressed); refused unread as a zip bomb")

    def _read(self, name, out=None):
        """Entry `name` as an array of its header's shape in native byte order, read into `out`
        when given. Exactly the bytes its header declares are decompressed, a chunk at a
        time."""
        entry = self.headers[name]
        native = entry.dtype.newbyteorder("=")
        if out is None:
            out = np.empty(entry.shape, native)
        transposed = entry.fortran_order and out.ndim > 1
        target = (np.empty(entry.shape[::-1], native) if transposed or not
                  out.flags.c_contiguous else out)
        raw = memoryview(target.reshape(-1).view(np.uint8))
        with self._corruption():
            fp = _Member(self._file, self._infos[name], self.error)
            fp.read(entry.header_size)
            position = 0
            while position < len(raw):
                n = fp.readinto(raw[position:position + CHUNK])
                if not n:
                    break
                position += n
            fp.finish()
        if entry.dtype.byteorder not in ("=", "|") and entry.dtype != native:
            target.byteswap(inplace=True)
        if target is not out:
            out[...] = target.T if transposed else target.reshape(out.shape)
        return out

    # -- the metadata, before anything is allocated

    def _check_metadata(self):
        """Types and values of everything the metadata holds."""
        m = self.metadata
        if m.get("dtype") not in ("float32", "float64"):
            raise self.invalid("metadata 'dtype'", m.get("dtype"), "'float32' or 'float64'")
        seed = m.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise self.invalid("metadata 'seed'", seed, "null or a non-negative integer")
        if not isinstance(m.get("training"), bool):
            raise self.invalid("metadata 'training'", m.get("training"), "true or false")
        layers = m.get("layers")
        if not isinstance(layers, list) or not layers:
            raise self.invalid("metadata 'layers'", layers, "a non-empty list of layers")
        for i, spec in enumerate(layers):
            if not isinstance(spec, dict):
                raise self.invalid(f"layer {i}", spec, "an object with type, config and state")
            if not isinstance(spec.get("type"), str):
                raise self.invalid(f"layer {i} 'type'", spec.get("type"), "a layer type name")
            if spec["type"] not in LAYERS:
                raise self.error(f"layer {i} has unknown type {spec['type']!r}; this fastnn "
                                 f"knows {sorted(LAYERS)}")
            for key in ("config", "state"):
                if not isinstance(spec.get(key), dict):
                    raise self.invalid(f"layer {i} {key!r}", spec.get(key), "an object")
            frozen = spec.get("frozen", [])
            if not isinstance(frozen, list) or not all(isinstance(name, str) for name in frozen):
                raise self.invalid(f"layer {i} 'frozen'", frozen, "a list of parameter names")
        for key in ("optimizer", "extra"):
            if m.get(key) is not None and not isinstance(m[key], dict):
                raise self.invalid(f"metadata {key!r}", m[key], "null or an object")
        if m.get("optimizer") is not None:
            self._check_optimizer_metadata(m["optimizer"])

    def _check_optimizer_metadata(self, spec):
        unknown = set(spec) - {"type", "defaults", "param_groups", "state"}
        if unknown:
            raise self.error(f"invalid optimizer: unknown keys {sorted(unknown)}; expected "
                             "type, defaults, param_groups and state")
        if not isinstance(spec.get("type"), str) or spec["type"] not in OPTIMIZERS:
            raise self.error(f"unknown optimizer type {spec.get('type')!r}; this fastnn knows "
                             f"{sorted(OPTIMIZERS)}")
        name = spec["type"]
        reference = OPTIMIZERS[name]([Parameter(np.zeros(1), "probe")]).defaults
        groups = spec.get("param_groups")
        if not isinstance(groups, list) or not groups:
            raise self.invalid("optimizer 'param_groups'", groups, "a non-empty list")
        for where, group in [("optimizer 'defaults'", spec.get("defaults"))] + [
                (f"optimizer param group {k}", g) for k, g in enumerate(groups)]:
            if not isinstance(group, dict):
                raise self.invalid(where, group, "an object")
            for key, value in group.items():
                if key == "params" and where != "optimizer 'defaults'":
                    if not isinstance(value, list) or not all(
                            isinstance(j, int) and not isinstance(j, bool) for j in value):
                        raise self.invalid(f"{where} 'params'", value,
                                           "a list of parameter indices")
                    continue
                # a learning-rate schedule records the group's initial_lr, as PyTorch's do
                known = reference if where == "optimizer 'defaults'" else {**reference,
                                                                           "initial_lr": 0.0}
                if key not in known:
                    raise self.error(f"invalid {where}: unknown hyperparameter {key!r}; {name} "
                                     f"takes {sorted(known)}")
                self._check_hyperparameter(f"{where} {key!r}", value, known[key])
        state = spec.get("state")
        if not isinstance(state, dict):
            raise self.invalid("optimizer 'state'", state, "an object")
        allowed = OPTIMIZER_STATE[name]
        for j, entry in state.items():
            if not j.isdigit():
                raise self.invalid("optimizer state key", j, "a parameter index")
            if not isinstance(entry, dict):
                raise self.invalid(f"optimizer state of parameter {j}", entry, "an object")
            for key, value in entry.items():
                where = f"optimizer state {key!r} of parameter {j}"
                if key not in allowed:
                    raise self.error(f"invalid optimizer state: unknown entry {key!r} for "
                                     f"parameter {j}; {name} keeps {sorted(allowed)}")
                if key == "step":
                    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                        raise self.invalid(where, value, "a non-negative integer step count")
                elif not _is_ref(value):
                    raise self.invalid(where, value, "an array entry")

    def _check_hyperparameter(self, where, value, default):
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise self.invalid(where, value, "true or false")
        elif isinstance(default, (int, float)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not \
                    math.isfinite(value):
                raise self.invalid(where, value, "a finite number")
        elif isinstance(default, tuple):
            if not isinstance(value, list) or len(value) != len(default) or any(
                    isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                    for v in value):
                raise self.invalid(where, value, f"a list of {len(default)} finite numbers")

    def _declared_arrays(self):
        """{entry name: shape} of the model's arrays from the layer configs alone, and the
        parameters' shapes in model.parameters() order."""
        arrays, parameters = {}, []
        for i, spec in enumerate(self.metadata["layers"]):
            params, buffers = _layer_arrays(spec["type"], spec["config"],
                                            lambda key, value, accepts, i=i, t=spec["type"]:
                                            self.invalid(f"layer {i} ({t}) config {key!r}",
                                                         value, accepts))
            for name, shape in params + buffers:
                arrays[f"model/{i}.{name}"] = shape
            parameters.extend(shape for _, shape in params)
        return arrays, parameters

    def _check_entries(self):
        """The entries must be exactly the ones the metadata refers to, each of the shape and
        dtype the metadata implies."""
        declared, parameters = self._declared_arrays()
        expected = {METADATA} | set(declared)
        optimizer = self.metadata.get("optimizer")
        references = {}
        if optimizer is not None:
            grouped = set()
            for g in optimizer["param_groups"]:
                indices = g["params"]
                if any(not 0 <= j < len(parameters) for j in indices):
                    raise self.error(f"optimizer parameter indices {indices} out of range for a "
                                     f"model with {len(parameters)} parameters")
                if len(set(indices)) < len(indices) or grouped & set(indices):
                    raise self.error(f"optimizer parameter indices {indices}: a parameter "
                                     "listed twice")
                grouped |= set(indices)
            for j, entry in optimizer["state"].items():
                if int(j) not in grouped:
                    raise self.error(f"optimizer state for parameter {j}, which no parameter "
                                     "group holds")
                for value in entry.values():
                    if _is_ref(value):
                        references[value[ARRAY_REF]] = parameters[int(j)]
            expected |= set(references)
        extra = set(_references(self.metadata.get("extra")))
        expected |= extra
        missing, unexpected = expected - set(self.headers), set(self.headers) - expected
        if missing or unexpected:
            raise self.error(f"the arrays do not match the metadata: missing {sorted(missing)}, "
                             f"unexpected {sorted(unexpected)}")
        dtype = np.dtype(self.metadata["dtype"])
        for name, shape in {**declared, **references}.items():
            self._check_header(name, shape, dtype)
        self.declared = declared

    def _check_header(self, name, shape, dtype):
        saved = self.headers[name]
        if saved.shape != tuple(shape) or saved.dtype.name != dtype.name:
            raise self.error(f"array {name!r} has shape {saved.shape} and dtype {saved.dtype}, "
                             f"expected shape {tuple(shape)} and dtype {dtype}")

    # -- building and reading, once everything above holds

    def _architecture(self):
        """Build the model the metadata describes, its parameters uninitialized (fastnn.init.deferred:
        model() reads every one of them from the file)."""
        layers = []
        for i, spec in enumerate(self.metadata["layers"]):
            try:
                with init.deferred():
                    layers.append(LAYERS[spec["type"]](**spec["config"]))
            except (TypeError, ValueError) as error:
                raise self.error(f"layer {i} ({spec['type']}): cannot rebuild it from its config "
                                 f"{spec['config']!r}: {error}") from error
        with init.deferred():
            model = Sequential(*layers, dtype=as_dtype(self.metadata["dtype"]),
                               seed=self.metadata["seed"])
        for i, (layer, spec) in enumerate(zip(model.layers, self.metadata["layers"])):
            self._check_layer_values(i, layer, spec)
            layer.set_extra_state(spec["state"])
            params = {p.name: p for p in layer.parameters()}
            if not set(spec.get("frozen", [])) <= set(params):
                raise self.invalid(f"layer {i} ({spec['type']}) 'frozen'", spec["frozen"],
                                   f"a list of some of its parameters {sorted(params)}")
            for name in spec.get("frozen", []):
                params[name].requires_grad = False
        model.train(self.metadata["training"])
        self._model = model
        self.model_keys = {f"model/{key}": array for key, array in model._state_arrays().items()}
        built = {name: array.shape for name, array in self.model_keys.items()}
        if built != self.declared:
            raise self.error(f"the model built from the metadata holds arrays {built}, not the "
                             f"{self.declared} its layer configs declare")

    def _check_layer_values(self, i, layer, spec):
        """Every config and state value of the kind the rebuilt layer itself reports (a float
        where it holds a float, a boolean where a flag), and counts non-negative."""
        where = f"layer {i} ({spec['type']})"
        config = layer.config()
        for key, value in spec["config"].items():
            if value is not None and config.get(key) is not None and \
                    _kind(value) != _kind(config[key]):
                raise self.invalid(f"{where} config {key!r}", value, _kind(config[key]))
        state = layer.get_extra_state()
        for key, value in spec["state"].items():
            if key not in state:
                raise self.error(f"invalid {where} state: unknown entry {key!r}; the layer "
                                 f"keeps {sorted(state)}")
            if _kind(value) != _kind(state[key]) or (_kind(value) == "a number" and value < 0):
                raise self.invalid(f"{where} state {key!r}", value,
                                   "a non-negative integer" if _kind(state[key]) == "a number"
                                   else _kind(state[key]))

    def _checked(self, name, array, nonnegative=False):
        """`array` (entry `name`, just read) if its values are finite (and >= 0 when asked)."""
        flat = array.reshape(-1)
        for start in range(0, flat.size, CHUNK):
            part = flat[start:start + CHUNK]
            if not np.isfinite(part).all():
                raise self.error(f"entry {name!r} holds NaN or infinite values; it must hold "
                                 "finite numbers")
            if nonnegative and (part < 0).any():
                raise self.error(f"entry {name!r} holds negative values; it must hold numbers "
                                 ">= 0 (it is a variance or an average of squares)")
        return array

    def model(self):
        for name, target in self.model_keys.items():
            self._checked(name, self._read(name, out=target),
                          nonnegative=name.rsplit(".", 1)[1] in _NONNEGATIVE_BUFFERS)
        return self._model

    def optimizer(self, model):
        spec = self.metadata.get("optimizer")
        if spec is None:
            return None
        with self._malformed():
            cls = OPTIMIZERS[spec["type"]]
            params = model.parameters()
            groups, flat = [], {}
            for g in spec["param_groups"]:
                indices = g["params"]  # checked in _check_entries
                for j in indices:
                    flat[j] = len(flat)
                groups.append({**_hyperparameters(g), "params": [params[j] for j in indices]})
            optimizer = cls(groups, **_hyperparameters(spec["defaults"]))
            state = {}
            for j, entry in spec["state"].items():
                state[flat[int(j)]] = {
                    key: (self._checked(value[ARRAY_REF], self._read(value[ARRAY_REF]),
                                        nonnegative=key in _NONNEGATIVE_STATE)
                          if _is_ref(value) else value) for key, value in entry.items()}
            saved = optimizer.state_dict()
            optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
        return optimizer

    def extra(self):
        extra = self.metadata.get("extra")
        with self._malformed():
            return _from_json(extra, self._read)

    @contextlib.contextmanager
    def _malformed(self):
        try:
            yield
        except (KeyError, TypeError, AttributeError, IndexError, RecursionError) as error:
            raise self.error(f"malformed metadata ({type(error).__name__}: {error})") from error
        except ValueError as error:
            if str(error).startswith(self.path + ": "):
                raise
            raise self.error(f"malformed metadata ({error})") from error


def _layer_arrays(kind, config, invalid):
    """([(name, shape)] of the parameters, [(name, shape)] of the buffers) that a layer of this
    type and config holds, from the config alone (the file format's rule; the reader checks it
    against the built model too)."""
    def positive(key):
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise invalid(key, value, "a positive integer")
        return value

    if kind == "Dense":
        n, m = positive("in_features"), positive("out_features")
        return [("W", (n, m)), ("b", (m,))], []
    if kind == "Maxout":
        n, m = positive("in_features"), positive("out_features")
        pieces = config.get("pieces", 2)
        if isinstance(pieces, bool) or not isinstance(pieces, int) or not 2 <= pieces <= 255:
            raise invalid("pieces", pieces, "an integer in [2, 255]")
        return [("W", (n, m * pieces)), ("b", (m * pieces,))], []
    if kind == "BatchNorm":
        d = positive("num_features")
        return [("gamma", (d,)), ("beta", (d,))], [("running_mean", (d,)), ("running_var", (d,))]
    if kind == "PReLU":
        return [("a", (positive("num_features"),))], []
    return [], []


def _kind(value):
    """What JSON kind of value this is, as an error message says what a setting accepts."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else "null"


class _Member:
    """The bytes of one zip entry, decompressed on demand, a bounded piece at a time: never more
    than the entry's declared size is produced (its zip size, which the reader has checked
    against its .npy header), and finish() refuses an entry with more data than that, fewer,
    leftover compressed bytes or a wrong checksum."""

    def __init__(self, file, info, error):
        self._file, self._info, self._error = file, info, error
        name = info.filename[:-4]
        file.seek(info.header_offset)
        local = file.read(30)
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            raise error(f"truncated or corrupted file (entry {name!r} has no local header)")
        name_length, extra_length = struct.unpack("<HH", local[26:30])
        if file.read(name_length) != info.orig_filename.encode("utf-8" if info.flag_bits & 0x800
                                                               else "cp437"):
            raise error(f"truncated or corrupted file (entry {name!r} is named differently in "
                        "its local header)")
        self._offset = info.header_offset + 30 + name_length + extra_length
        if self._offset + info.compress_size > file.seek(0, os.SEEK_END):
            raise error(f"truncated or corrupted file (entry {name!r} runs past the end of the "
                        "file)")
        self.name = name
        self.position = 0  # decompressed bytes returned so far
        self._left = info.file_size
        self._compressed_left = info.compress_size
        self._inflate = (zlib.decompressobj(-15) if info.compress_type == zipfile.ZIP_DEFLATED
                         else None)
        self._tail = b""
        self._crc = 0

    def _raw(self, n):
        n = min(n, self._compressed_left)
        self._file.seek(self._offset + self._info.compress_size - self._compressed_left)
        data = self._file.read(n)
        self._compressed_left -= len(data)
        return data

    def _produce(self, n):
        """Up to n more decompressed bytes (b"" at the end of the data)."""
        if self._inflate is None:
            return self._raw(n)
        while True:
            if self._inflate.eof:
                return b""
            if not self._tail:
                self._tail = self._raw(CHUNK)
                if not self._tail:
                    return b""
            data = self._inflate.decompress(self._tail, n)
            self._tail = self._inflate.unconsumed_tail
            if data:
                return data

    def read(self, n=CHUNK):
        data = self._produce(min(n, self._left))
        self._left -= len(data)
        self.position += len(data)
        self._crc = zlib.crc32(data, self._crc)
        return data

    def readinto(self, buffer):
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def finish(self):
        if self._left:
            raise self._error(f"truncated or corrupted file (entry {self.name!r} ends after "
                              f"{self.position} of its {self.position + self._left} bytes)")
        if self._produce(1):
            raise self._error(f"truncated or corrupted file (entry {self.name!r} holds more "
                              "data than its header and zip sizes declare)")
        if self._inflate is not None and (not self._inflate.eof or self._tail
                                          or self._inflate.unused_data or self._compressed_left):
            raise self._error(f"truncated or corrupted file (entry {self.name!r}: its "
                              "compressed data does not end where its sizes say)")
        if self._crc != self._info.CRC:
            raise self._error(f"truncated or corrupted file (entry {self.name!r} fails its "
                              "checksum)")


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
