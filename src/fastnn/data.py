"""Datasets and splits."""
import gzip
import io
import math
import os
import pickle
import zipfile
import zlib
from importlib import resources

import numpy as np

from ._validation import check_float, check_path


def load_digits():
    """The 8x8 handwritten digits (1797 images, 64 features with values 0-16, 10 classes).

    The UCI "Optical Recognition of Handwritten Digits" data set (E. Alpaydin and C. Kaynak,
    CC BY 4.0; see fastnn/datasets/DIGITS.md) ships inside fastnn as datasets/digits.npz, the
    copy scikit-learn ships; it is read with NumPy alone, never downloaded.
    Returns (X float64 (1797, 64), y int64 (1797,)).
    """
    source = resources.files("fastnn") / "datasets" / "digits.npz"
    try:
        with source.open("rb") as f, np.load(f, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise OSError(f"the digits data shipped with fastnn ({source}) cannot be read "
                      f"({error}); reinstall fastnn") from None
    data, target = arrays.get("data"), arrays.get("target")
    if set(arrays) != {"data", "target"} or data.dtype != np.uint8 or data.shape != (1797, 64) \
            or target.dtype != np.uint8 or target.shape != (1797,) or data.max() > 16 \
            or target.max() > 9:
        raise OSError(f"the digits data shipped with fastnn ({source}) is not the expected "
                      f"1797 x 64 uint8 images and labels; reinstall fastnn")
    return data.astype(np.float64), target.astype(np.int64)


def stratified_split(y, fraction, seed=None):
    """Indices (train, held_out) with `fraction` of every class held out (at least one each).

    Classes keep their proportions in both parts; the order within each part is shuffled.
    """
    fraction = check_float("stratified_split: fraction", fraction, 0.0, 1.0, low_open=True,
                           high_open=True)
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"stratified_split: y must be a 1-D array of labels, got shape {y.shape}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(y.shape[0])
    sorted_labels = y[order]
    by_class = np.argsort(sorted_labels, kind="stable")
    classes, starts, counts = np.unique(sorted_labels[by_class], return_index=True,
                                        return_counts=True)
    if np.any(counts < 2):
        raise ValueError("stratified_split: every class needs at least 2 samples")
    n_held = np.clip(np.round(counts * fraction).astype(int), 1, counts - 1)
    rank = np.arange(y.shape[0]) - np.repeat(starts, counts)
    held = rank < np.repeat(n_held, counts)
    held_idx, train_idx = order[by_class[held]], order[by_class[~held]]
    return rng.permutation(train_idx), rng.permutation(held_idx)


# Loaders for image data sets in the files their authors distribute, read from a local path;
# nothing is ever downloaded. Each returns (X float32 (N, D) scaled to [0, 1], y int64 (N,)).

_GZIP_MAGIC = b"\x1f\x8b"
# IDX type code -> big-endian dtype of the stored values
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


_TRAILING_CHECK = 1 << 16  # bytes read past the declared data to report what follows it


def _open_maybe_gzip(f):
    """A reader of the file object `f`'s content, decompressed when it starts with the gzip
    magic (whatever the name), and whether it was compressed."""
    compressed = f.read(2) == _GZIP_MAGIC
    f.seek(0)
    return (gzip.GzipFile(fileobj=f, mode="rb") if compressed else f), compressed


def _read_exactly(stream, n, path, what):
    """n bytes of `stream` read a chunk at a time, or ValueError when it ends first: never more
    than n bytes are decompressed, and the memory is that of the bytes actually there."""
    chunks, left = [], n
    while left:
        chunk = stream.read(min(left, 1 << 24))
        if not chunk:
            raise ValueError(f"{path}: truncated IDX {what}: {n} bytes expected, the file "
                             f"holds {n - left}")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def load_idx(path):
    """One IDX file as a NumPy array of its stored shape and dtype, in native byte order.

    IDX is the format of the MNIST files (Y. LeCun, C. Cortes and C. J. C. Burges) and of
    Fashion-MNIST (Zalando Research): a 4-byte magic number (two zero bytes, a type code, the number
    of dimensions), one big-endian int32 size per dimension, then the values big-endian in row-major
    order. Type codes: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64.
    gzip-compressed files (`*.gz`) are recognized by their first bytes and decompressed.
    Raises ValueError naming the file for a bad magic number, an unknown type code, truncated data
    or bytes after the data. The header is read first and then exactly the bytes it declares, so
    a compressed file is never decompressed beyond its declared data (and a few bytes more, to
    report any that follow).
    """
    path = check_path("load_idx: path", path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        stream, compressed = _open_maybe_gzip(f)
        try:
            return _read_idx(stream, path, None if compressed else size)
        except (OSError, EOFError, zlib.error) as error:
            raise ValueError(f"{path}: corrupt or truncated gzip data ({error})") from None


def _read_idx(stream, path, size):
    """The array in the IDX `stream`; `size` is its length in bytes when known (plain files)."""
    magic = stream.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number {magic.hex() or 'empty'}; "
                         f"expected 0000 then a type code and the number of dimensions)")
    code, ndim = magic[2], magic[3]
    if code not in _IDX_TYPES:
        raise ValueError(f"{path}: unknown IDX type code 0x{code:02X} (known: "
                         f"{', '.join(f'0x{c:02X}' for c in _IDX_TYPES)})")
    header = 4 + 4 * ndim
    dims = stream.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header: {ndim} dimensions need {header} bytes, "
                         f"the file has {4 + len(dims)}")
    shape = tuple(int(d) for d in np.frombuffer(dims, dtype=">u4"))
    stored = np.dtype(_IDX_TYPES[code])
    count = math.prod(shape)
    expected = header + count * stored.itemsize
    if size is not None and size < expected:
        raise ValueError(f"{path}: truncated IDX data: shape {shape} of {stored.name} needs "
                         f"{expected} bytes, the file has {size}")
    if size is not None and size > expected:
        raise ValueError(f"{path}: {size - expected} unexpected bytes after the IDX data "
                         f"(shape {shape} of {stored.name} ends at byte {expected})")
    try:
        raw = _read_exactly(stream, count * stored.itemsize, path, "data")
    except ValueError:
        raise ValueError(f"{path}: truncated IDX data: shape {shape} of {stored.name} needs "
                         f"{expected} bytes of data, the file holds fewer") from None
    trailing = len(stream.read(_TRAILING_CHECK))
    if trailing:
        amount = f"at least {trailing}" if trailing == _TRAILING_CHECK else str(trailing)
        raise ValueError(f"{path}: {amount} unexpected bytes after the IDX data (shape {shape} "
                         f"of {stored.name} ends at byte {expected} of the decompressed data)")
    data = np.frombuffer(raw, dtype=stored, count=count)
    return data.astype(stored.newbyteorder("=")).reshape(shape)


def _find_files(directory, names, what, suffixes=("",)):
    """Path of each name in `directory` (first suffix that exists); FileNotFoundError listing the
    expected names when any is missing."""
    found, missing = [], []
    for name in names:
        paths = [os.path.join(directory, name + s) for s in suffixes]
        path = next((p for p in paths if os.path.isfile(p)), None)
        found.append(path)
        if path is None:
            missing.append(name)
    if missing:
        alternatives = " (each optionally with .gz)" if ".gz" in suffixes else ""
        raise FileNotFoundError(f"{what}: {', '.join(missing)} not found in {directory}; expected "
                                f"the files {', '.join(names)}{alternatives}")
    return found


def _kind_choice(kind, choices, loader):
    if kind not in choices:
        raise ValueError(f"{loader}: kind must be one of {', '.join(map(repr, choices))}, "
                         f"got {kind!r}")
    return choices[kind]


def _scaled_float32(pixels):
    """uint8 (N, ...) -> float32 (N, D) with values pixel / 255 (correctly rounded)."""
    X = pixels.reshape(pixels.shape[0], math.prod(pixels.shape[1:])).astype(np.float32)
    np.divide(X, np.float32(255), out=X)
    return X


def load_mnist(directory, kind="train"):
    """MNIST or Fashion-MNIST from the IDX files in `directory` (plain or .gz; never downloaded).

    MNIST is the handwritten digit data set of Y. LeCun, C. Cortes and C. J. C. Burges;
    Fashion-MNIST (Zalando Research: H. Xiao, K. Rasul, R. Vollgraf, 2017) is a drop-in
    replacement with images of clothing. Both ship the same four files:
    train-images-idx3-ubyte, train-labels-idx1-ubyte (kind="train", 60000 images) and
    t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (kind="test", 10000 images).
    Returns (X float32 (N, rows*cols) = (N, 784) for the 28x28 images, pixels scaled to [0, 1],
    y int64 (N,)).
    """
    prefix = _kind_choice(kind, {"train": "train", "test": "t10k"}, "load_mnist")
    names = [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]
    directory = check_path("load_mnist: directory", directory)
    images_path, labels_path = _find_files(directory, names, f"MNIST {kind} files",
                                           suffixes=("", ".gz"))
    images, labels = load_idx(images_path), load_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{images_path}: expected IDX images of shape (N, rows, cols) and type "
                         f"uint8, got shape {images.shape} of {images.dtype}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise ValueError(f"{labels_path}: expected IDX labels of shape (N,) and type uint8, got "
                         f"shape {labels.shape} of {labels.dtype}")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{labels_path}: labels must lie in [0, 9] (MNIST and Fashion-MNIST have "
                         f"10 classes), found {labels.max()}")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"MNIST {kind} files disagree: {images_path} holds {images.shape[0]} "
                         f"images, {labels_path} holds {labels.shape[0]} labels")
    return _scaled_float32(images), labels.astype(np.int64)


# CIFAR-10 batches are pickles. Unpickling can call any function a file names, so the batches are
# read by an unpickler that builds only what they contain: dicts, lists, strings, ints and one
# NumPy uint8 array (rebuilt through numpy's _reconstruct, ndarray and dtype; bytes pickled by
# Python 3 with protocol 2 also need _codecs.encode with latin1, and b"" needs bytes()).
_reconstruct = np.empty(0).__reduce__()[0]


def _reconstruct_ndarray(subtype, shape, dtype):
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"numpy _reconstruct of {subtype!r}, expected numpy.ndarray")
    return _reconstruct(subtype, shape, dtype)


def _encode_latin1(text, encoding):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with {type(text).__name__} and "
                                     f"{encoding!r}, expected str and 'latin1'")
    return text.encode("latin1")


def _empty_bytes(*args):
    if args:
        raise pickle.UnpicklingError(f"bytes{args!r}, expected bytes() (protocol 2's b'')")
    return b""


_CIFAR_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct_ndarray,   # Python 2, numpy 1.x
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct_ndarray,  # numpy 2.x
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _encode_latin1,
    ("__builtin__", "bytes"): _empty_bytes,
}


class _RefusedPickle(ValueError):
    pass


class _CifarUnpickler(pickle.Unpickler):
    def __init__(self, file, path):
        super().__init__(file, encoding="bytes")  # Python 2 str -> bytes, as the files expect
        self._path = path

    def find_class(self, module, name):
        try:
            return _CIFAR_GLOBALS[(module, name)]
        except KeyError:
            raise _RefusedPickle(f"refusing to load {self._path}: it asks for {module}.{name}, "
                                 f"which a CIFAR-10 batch does not contain (unpickling it could "
                                 f"run code)") from None

    def persistent_load(self, pid):
        raise _RefusedPickle(f"refusing to load {self._path}: it uses persistent ids")


def _load_cifar_pickle(path):
    """The dict in one CIFAR-10 pickle, read with the restricted unpickler."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        obj = _CifarUnpickler(io.BytesIO(raw), path).load()
    except _RefusedPickle:
        raise
    except Exception as error:  # corrupt input can fail in many ways inside pickle
        raise ValueError(f"{path}: not a readable CIFAR-10 pickle ({type(error).__name__}: "
                         f"{error})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return obj


def _cifar_batch(path):
    """(data uint8 (n, 3072), labels int64 (n,)) of one CIFAR-10 batch file."""
    batch = _load_cifar_pickle(path)
    missing = [k.decode() for k in (b"data", b"labels") if k not in batch]
    if missing:
        raise ValueError(f"{path}: not a CIFAR-10 batch, no {' or '.join(missing)} entry "
                         f"(keys: {sorted(map(repr, batch))})")
    data = batch[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3072:
        description = (f"shape {data.shape} of {data.dtype}" if isinstance(data, np.ndarray)
                       else type(data).__name__)
        raise ValueError(f"{path}: expected data as a uint8 array of shape (N, 3072), got "
                         f"{description}")
    expected = f"{path}: expected {data.shape[0]} integer labels (one per image)"
    try:
        labels = np.asarray(batch[b"labels"])
    except (ValueError, TypeError) as error:  # e.g. ragged nested lists
        raise ValueError(f"{expected}, got {error}") from None
    if labels.size == 0:
        labels = labels.astype(np.int64)  # np.asarray([]) is float64
    if labels.shape != (data.shape[0],) or labels.dtype.kind not in "iu":
        raise ValueError(f"{expected}, got shape {labels.shape} of {labels.dtype}")
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: labels must lie in [0, 9], found {labels.min()} to "
                         f"{labels.max()}")
    return data, labels


def _cifar10_directory(directory):
    """`directory` itself, or its cifar-10-batches-py subdirectory when that is where the
    batches are (the archive extracts into one)."""
    inner = os.path.join(directory, "cifar-10-batches-py")
    if not os.path.isfile(os.path.join(directory, "batches.meta")) and os.path.isdir(inner):
        return inner
    return directory


def load_cifar10(directory, kind="train"):
    """CIFAR-10 from its "python version" batches in `directory` (never downloaded).

    CIFAR-10 (A. Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009) is
    60000 32x32 colour images in 10 classes. The "python version" archive extracts to
    cifar-10-batches-py/ with data_batch_1 ... data_batch_5 (kind="train", 50000 images),
    test_batch (kind="test", 10000 images) and batches.meta; `directory` may be that folder or the
    one containing it. Each batch is a dict pickled by Python 2 (b"data": uint8 (10000, 3072),
    b"labels": list of ints); it is read with an unpickler that refuses anything a batch does not
    contain, so a tampered file cannot run code.
    Returns (X float32 (N, 3072) scaled to [0, 1], in the file's channel-first order: 1024 red,
    then 1024 green, then 1024 blue values, each image row-major; y int64 (N,)).
    `X.reshape(-1, 3, 32, 32)` gives the images as (N, channel, row, column).
    """
    names = _kind_choice(kind, {"train": [f"data_batch_{i}" for i in range(1, 6)],
                                "test": ["test_batch"]}, "load_cifar10")
    directory = _cifar10_directory(check_path("load_cifar10: directory", directory))
    paths = _find_files(directory, names, f"CIFAR-10 {kind} batches")
    batches = [_cifar_batch(path) for path in paths]
    data = np.concatenate([d for d, _ in batches])
    labels = np.concatenate([l for _, l in batches])
    return _scaled_float32(data), labels


def cifar10_label_names(directory):
    """The 10 CIFAR-10 class names from batches.meta, in label order ("airplane", ...)."""
    directory = _cifar10_directory(check_path("cifar10_label_names: directory", directory))
    (path,) = _find_files(directory, ["batches.meta"], "CIFAR-10 metadata")
    meta = _load_cifar_pickle(path)
    names = meta.get(b"label_names")
    if not isinstance(names, list) or not all(isinstance(n, (bytes, str)) for n in names):
        raise ValueError(f"{path}: expected a list of names under label_names")
    return [n.decode("latin1") if isinstance(n, bytes) else n for n in names]
