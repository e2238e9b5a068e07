"""MNIST/Fashion-MNIST (IDX) and CIFAR-10 (python version) loaders, on small files written here in
the exact formats the data sets ship in."""
import gzip
import os
import pickle
import struct

import numpy as np
import pytest

from fastnn.data import cifar10_label_names, load_cifar10, load_idx, load_mnist

pytestmark = pytest.mark.backend_independent

# IDX type code -> (struct format of one value, dtype load_idx returns, sample values with extremes)
IDX_TYPES = {
    0x08: ("B", np.uint8, [0, 1, 127, 128, 254, 255]),
    0x09: ("b", np.int8, [-128, -1, 0, 1, 126, 127]),
    0x0B: ("h", np.int16, [-32768, -2, 0, 3, 258, 32767]),
    0x0C: ("i", np.int32, [-2**31, -70000, 0, 1, 65536 + 2, 2**31 - 1]),
    0x0D: ("f", np.float32, [-1.5, 0.0, 0.1, 3.25e-30, 1e30, np.inf]),
    0x0E: ("d", np.float64, [-1.5, 0.0, 0.1, 1e-300, 1e300, -np.inf]),
}


def idx_bytes(code, shape, values, ndim=None):
    """An IDX file by hand: magic (0, 0, type code, ndim), big-endian int32 sizes, the values."""
    fmt = IDX_TYPES[code][0] if code in IDX_TYPES else "B"
    ndim = len(shape) if ndim is None else ndim
    return (struct.pack(">BBBB", 0, 0, code, ndim) + struct.pack(f">{len(shape)}i", *shape)
            + struct.pack(f">{len(values)}{fmt}", *values))


def write(path, data, compress=False):
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


# ---------------------------------------------------------------- IDX


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("code", sorted(IDX_TYPES), ids=lambda c: f"0x{c:02X}")
def test_idx_every_type_code(tmp_path, code, compress):
    fmt, dtype, values = IDX_TYPES[code]
    path = write(tmp_path / ("f.idx" + (".gz" if compress else "")),
                 idx_bytes(code, (2, 3), values), compress)
    array = load_idx(path)
    assert array.shape == (2, 3) and array.dtype == dtype and array.dtype.isnative
    np.testing.assert_array_equal(array, np.array(values, dtype=dtype).reshape(2, 3))
    array[0, 0] = 0  # a writable array, not a view of the file's bytes


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4), (0, 28, 28), (1, 1, 1, 2)])
def test_idx_shapes(tmp_path, shape):
    values = list(range(int(np.prod(shape))))
    array = load_idx(write(tmp_path / "f", idx_bytes(0x08, shape, values)))
    assert array.shape == shape
    np.testing.assert_array_equal(array.ravel(), values)


def test_idx_gzip_is_detected_by_content_not_name(tmp_path):
    data = idx_bytes(0x0B, (3,), [-1, 0, 513])
    compressed_without_suffix = write(tmp_path / "labels", data, compress=True)
    plain_with_suffix = write(tmp_path / "labels.gz", data)
    for path in (compressed_without_suffix, plain_with_suffix):
        np.testing.assert_array_equal(load_idx(path), [-1, 0, 513])


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("data, message", [
    (b"", "bad magic number empty"),
    (b"\x00\x00", "bad magic number 0000"),
    (b"\x01\x00\x08\x01" + struct.pack(">i", 1) + b"\x07", "bad magic number 01000801"),
    (b"P5\n28 28\n255\n", "not an IDX file"),
    (idx_bytes(0x0A, (2,), [1, 2]), "unknown IDX type code 0x0A"),
    (idx_bytes(0x08, (4,), [1, 2, 3]), "truncated IDX data: shape (4,) of uint8 needs 12 bytes"),
    (idx_bytes(0x0C, (2, 2), [1, 2, 3]), "truncated IDX data"),
    (idx_bytes(0x08, (2, 3), [], ndim=3)[:14], "truncated IDX header: 3 dimensions need 16"),
    (idx_bytes(0x08, (3,), [1, 2, 3]) + b"\x00", "1 unexpected bytes after the IDX data"),
    (idx_bytes(0x0E, (1,), [1.0]) + b"junk", "4 unexpected bytes"),
], ids=["empty", "short", "magic", "other-format", "type", "truncated", "truncated-int",
        "header", "trailing", "trailing-double"])
def test_idx_errors_name_the_file(tmp_path, data, message, compress):
    path = write(tmp_path / "broken-idx1-ubyte", data, compress)
    with pytest.raises(ValueError, match="broken-idx1-ubyte") as error:
        load_idx(path)
    assert message in str(error.value)


def test_idx_corrupt_gzip(tmp_path):
    data = gzip.compress(idx_bytes(0x08, (100,), list(range(100))))
    for name, broken in [("cut", data[:len(data) // 2]), ("flipped", data[:12] + b"\xff" * 20)]:
        path = write(tmp_path / f"{name}.gz", broken)
        # read as a stream, corrupt data can also surface as what it decompresses to
        with pytest.raises(ValueError, match=f"{name}.gz: (corrupt or truncated gzip|not an "
                                             "IDX file)"):
            load_idx(path)


def test_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_idx(tmp_path / "nope")


# ---------------------------------------------------------------- MNIST


def write_mnist(directory, prefix, pixels, labels, compress=False, labels_code=0x08):
    n, rows, cols = pixels.shape
    suffix = ".gz" if compress else ""
    write(directory / f"{prefix}-images-idx3-ubyte{suffix}",
          idx_bytes(0x08, pixels.shape, pixels.ravel().tolist()), compress)
    write(directory / f"{prefix}-labels-idx1-ubyte{suffix}",
          idx_bytes(labels_code, (len(labels),), list(labels)), compress)


@pytest.fixture
def mnist_dir(tmp_path):
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    train[0, 0, 0], train[0, 0, 1] = 0, 255
    test = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    write_mnist(tmp_path, "train", train, [5, 0, 4, 1, 9])
    write_mnist(tmp_path, "t10k", test, [7, 2, 1], compress=True)  # the .gz files as shipped
    return tmp_path, train, test


def test_load_mnist_train_and_test(mnist_dir):
    directory, train, test = mnist_dir
    for kind, pixels, labels in [("train", train, [5, 0, 4, 1, 9]), ("test", test, [7, 2, 1])]:
        X, y = load_mnist(directory, kind=kind)
        assert X.shape == (len(labels), 784) and X.dtype == np.float32 and X.flags.c_contiguous
        assert y.dtype == np.int64
        np.testing.assert_array_equal(y, labels)
        # row-major: pixel (row r, column c) of image i is X[i, 28 * r + c]
        assert X[1, 28 * 3 + 5] == np.float32(pixels[1, 3, 5]) / np.float32(255)
        np.testing.assert_array_equal(X, pixels.reshape(-1, 784).astype(np.float32)
                                      / np.float32(255))
        assert X.min() >= 0 and X.max() <= 1
    X, _ = load_mnist(str(directory))  # default "train", str paths too
    assert X[0, 0] == 0 and X[0, 1] == 1


def test_load_mnist_other_image_sizes(tmp_path):
    pixels = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_mnist(tmp_path, "train", pixels, [1, 2])
    X, _ = load_mnist(tmp_path)
    assert X.shape == (2, 12)
    write_mnist(tmp_path, "t10k", np.zeros((0, 28, 28), np.uint8), [])
    X, y = load_mnist(tmp_path, kind="test")
    assert X.shape == (0, 784) and X.dtype == np.float32 and y.shape == (0,)


def test_load_mnist_missing_files_lists_expected_names(mnist_dir):
    directory, _, _ = mnist_dir
    (directory / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError) as error:
        load_mnist(directory)
    message = str(error.value)
    assert "train-labels-idx1-ubyte not found" in message and str(directory) in message
    assert "train-images-idx3-ubyte, train-labels-idx1-ubyte" in message and ".gz" in message
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte"):
        load_mnist(directory / "elsewhere", kind="test")


def test_load_mnist_mismatched_counts(tmp_path):
    write_mnist(tmp_path, "train", np.zeros((4, 28, 28), np.uint8), [1, 2, 3])
    with pytest.raises(ValueError, match="holds 4 images, .*labels-idx1-ubyte holds 3 labels"):
        load_mnist(tmp_path)


def test_load_mnist_wrong_contents(tmp_path):
    write_mnist(tmp_path, "train", np.zeros((2, 28, 28), np.uint8), [1, 2], labels_code=0x0C)
    with pytest.raises(ValueError, match="labels-idx1-ubyte: expected IDX labels .* uint8"):
        load_mnist(tmp_path)
    write(tmp_path / "train-images-idx3-ubyte", idx_bytes(0x08, (2, 784), [0] * 1568))
    with pytest.raises(ValueError, match=r"images-idx3-ubyte: expected IDX images of shape \(N"):
        load_mnist(tmp_path)


def test_load_mnist_kind(mnist_dir):
    with pytest.raises(ValueError, match="kind must be one of 'train', 'test'"):
        load_mnist(mnist_dir[0], kind="t10k")


# ---------------------------------------------------------------- CIFAR-10

LABEL_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse",
               b"ship", b"truck"]


class Py2Pickler(pickle._Pickler):
    """Writes bytes and str as Python 2 str (SHORT_BINSTRING/BINSTRING), the way the CIFAR-10
    files were written by Python 2's cPickle."""
    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        data = obj if isinstance(obj, bytes) else obj.encode("latin1")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str


def dump_cifar(path, obj, style="py3"):
    """Protocol 2 as in CIFAR's files; "py2" also mimics Python 2 strings and numpy 1.x names."""
    if style == "py3":
        path.write_bytes(pickle.dumps(obj, protocol=2))
        return
    with open(path, "wb") as f:
        Py2Pickler(f, protocol=2).dump(obj)
    data = path.read_bytes().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    path.write_bytes(data)


def cifar_batch(data, labels, name=b"training batch 1 of 5"):
    return {b"batch_label": name, b"labels": list(labels), b"data": data,
            b"filenames": [b"img_%d.png" % i for i in range(len(labels))]}


def write_cifar(directory, rng, sizes=(3, 2, 4, 1, 2), n_test=3, style="py3"):
    directory.mkdir(parents=True, exist_ok=True)
    batches = {}
    for i, n in enumerate(sizes, 1):
        batches[f"data_batch_{i}"] = (rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                                      rng.integers(0, 10, n).tolist())
    batches["test_batch"] = (rng.integers(0, 256, (n_test, 3072), dtype=np.uint8),
                             rng.integers(0, 10, n_test).tolist())
    for name, (data, labels) in batches.items():
        dump_cifar(directory / name, cifar_batch(data, labels), style)
    dump_cifar(directory / "batches.meta", {b"num_cases_per_batch": 10000,
                                            b"label_names": LABEL_NAMES, b"num_vis": 3072}, style)
    return batches


@pytest.mark.parametrize("style", ["py3", "py2"])
def test_load_cifar10(tmp_path, style):
    directory = tmp_path / "cifar-10-batches-py"
    batches = write_cifar(directory, np.random.default_rng(1), style=style)
    if style == "py2":
        assert b"cnumpy.core.multiarray\n_reconstruct" in (directory / "test_batch").read_bytes()
        assert b"_codecs" not in (directory / "test_batch").read_bytes()
    X, y = load_cifar10(directory)
    train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    assert X.shape == (12, 3072) and X.dtype == np.float32 and y.shape == (12,)
    assert y.dtype == np.int64
    data = np.concatenate([d for d, _ in train])
    np.testing.assert_array_equal(X, data.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(y, sum((l for _, l in train), []))
    # channel-first as in the file: red plane, then green, then blue, each row-major 32x32
    image = X.reshape(-1, 3, 32, 32)
    assert image[4, 1, 2, 3] == np.float32(data[4, 1024 + 32 * 2 + 3]) / np.float32(255)

    X_test, y_test = load_cifar10(directory, kind="test")
    np.testing.assert_array_equal(X_test * 255, batches["test_batch"][0])
    np.testing.assert_array_equal(y_test, batches["test_batch"][1])
    assert cifar10_label_names(directory) == [n.decode() for n in LABEL_NAMES]


def test_load_cifar10_from_the_parent_directory(tmp_path):
    batches = write_cifar(tmp_path / "cifar-10-batches-py", np.random.default_rng(2))
    X, y = load_cifar10(tmp_path, kind="test")
    np.testing.assert_array_equal(y, batches["test_batch"][1])
    assert cifar10_label_names(str(tmp_path))[9] == "truck"


def test_load_cifar10_scaling(tmp_path):
    write_cifar(tmp_path, np.random.default_rng(3))
    data = np.zeros((2, 3072), np.uint8)
    data[0, 0], data[1, 3071] = 255, 128
    dump_cifar(tmp_path / "test_batch", cifar_batch(data, [0, 9]))
    X, _ = load_cifar10(tmp_path, kind="test")
    assert X.min() == 0 and X[0, 0] == 1 and X[1, 3071] == np.float32(128) / np.float32(255)


def test_load_cifar10_missing_batches(tmp_path):
    write_cifar(tmp_path, np.random.default_rng(4))
    (tmp_path / "data_batch_4").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_4 not found") as error:
        load_cifar10(tmp_path)
    expected = "data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5"
    assert expected in str(error.value)
    with pytest.raises(FileNotFoundError, match="test_batch"):
        load_cifar10(tmp_path / "elsewhere", kind="test")
    with pytest.raises(FileNotFoundError, match="batches.meta"):
        cifar10_label_names(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="kind must be one of"):
        load_cifar10(tmp_path, kind="validation")


@pytest.mark.parametrize("batch, message", [
    (cifar_batch(np.zeros((2, 3071), np.uint8), [0, 1]), r"uint8 array of shape \(N, 3072\), got "
                                                         r"shape \(2, 3071\)"),
    (cifar_batch(np.zeros((2, 3072), np.float32), [0, 1]), "got shape .* of float32"),
    (cifar_batch(np.zeros((2, 3072), object), [0, 1]), "of object"),
    (cifar_batch(np.zeros(3072, np.uint8), [0]), r"got shape \(3072,\)"),
    (cifar_batch(b"\x00" * 3072, [0]), "got bytes"),
    (cifar_batch(np.zeros((2, 3072), np.uint8), [0]), "expected 2 integer labels"),
    (cifar_batch(np.zeros((2, 3072), np.uint8), [0.5, 1.0]), "of float64"),
    (cifar_batch(np.zeros((2, 3072), np.uint8), [0, [1, 2]]), "expected 2 integer labels"),
    (cifar_batch(np.zeros((2, 3072), np.uint8), [0, 10]), r"labels must lie in \[0, 9\]"),
    (cifar_batch(np.zeros((1, 3072), np.uint8), [-1]), "found -1"),
    ({b"data": np.zeros((1, 3072), np.uint8), b"fine_labels": [3]}, "no labels entry"),
    ([np.zeros((1, 3072), np.uint8), [3]], "expected a pickled dict, got list"),
], ids=["columns", "float-data", "object-data", "1-d", "bytes", "count", "float-labels", "ragged",
        "label-10", "label-neg", "no-labels", "not-dict"])
def test_load_cifar10_malformed_batches(tmp_path, batch, message):
    write_cifar(tmp_path, np.random.default_rng(5))
    dump_cifar(tmp_path / "test_batch", batch)
    with pytest.raises(ValueError, match="test_batch: ") as error:
        load_cifar10(tmp_path, kind="test")
    assert error.match(message)


def test_load_cifar10_empty_batch(tmp_path):
    write_cifar(tmp_path, np.random.default_rng(6))
    dump_cifar(tmp_path / "test_batch", cifar_batch(np.zeros((0, 3072), np.uint8), []))
    X, y = load_cifar10(tmp_path, kind="test")
    assert X.shape == (0, 3072) and y.shape == (0,) and y.dtype == np.int64


def test_load_cifar10_corrupt_pickles(tmp_path):
    write_cifar(tmp_path, np.random.default_rng(7))
    good = (tmp_path / "test_batch").read_bytes()
    for broken in (good[:len(good) // 2], b"", b"not a pickle at all", good[:40] + b"\xff" * 40):
        (tmp_path / "test_batch").write_bytes(broken)
        with pytest.raises(ValueError, match="test_batch: not a readable CIFAR-10 pickle"):
            load_cifar10(tmp_path, kind="test")


# -------------------------------------------------- CIFAR-10: pickles that try to run code


class Payload:
    """Unpickling this calls `func(*args)`."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def payloads(marker):
    touch = f"open({str(marker)!r}, 'w').close()"
    return {
        "os.system": (Payload(os.system, f"touch '{marker}'"), r"(posix|nt|os)\.system"),
        "exec": (Payload(exec, touch), r"(__builtin__|builtins)\.exec"),
        "eval": (Payload(eval, touch), r"(__builtin__|builtins)\.eval"),
        "open": (Payload(open, str(marker), "w"), r"(__builtin__|builtins|io)\.open"),
        "numpy.save": (Payload(np.save, str(marker), np.zeros(1)), r"numpy\.save"),
        "numpy.load": (Payload(np.load, str(marker)), r"numpy\.load"),
    }


@pytest.mark.parametrize("where", ["labels", "data", "top", "nested", "meta"])
@pytest.mark.parametrize("name", sorted(payloads("m")))
def test_cifar10_malicious_pickle_is_refused_and_never_runs(tmp_path, name, where):
    directory = tmp_path / "cifar"
    write_cifar(directory, np.random.default_rng(8))
    marker = tmp_path / "marker"
    payload, asks_for = payloads(marker)[name]
    data = np.zeros((2, 3072), np.uint8)
    if where == "labels":
        obj = cifar_batch(data, [0, payload])
    elif where == "data":
        obj = cifar_batch(payload, [0, 1])
    elif where == "top":
        obj = payload
    elif where == "nested":
        obj = cifar_batch(data, [0, 1])
        obj[b"filenames"] = [b"a.png", {b"x": [payload]}]
    else:
        obj = {b"label_names": [b"cat", payload]}
    target = directory / ("batches.meta" if where == "meta" else "test_batch")
    dump_cifar(target, obj)
    loader = (lambda: cifar10_label_names(directory)) if where == "meta" else (
        lambda: load_cifar10(directory, kind="test"))
    with pytest.raises(ValueError, match=f"refusing to load .*{target.name}: it asks for "
                                         f"{asks_for}") as error:
        loader()
    assert "run code" in str(error.value)
    assert not marker.exists() and not (tmp_path / "marker.npy").exists()


def test_cifar10_unpickler_refuses_other_uses_of_allowed_names(tmp_path):
    import codecs
    write_cifar(tmp_path, np.random.default_rng(9))
    marker = tmp_path / "marker"
    cases = [
        # _codecs.encode with a codec other than latin1
        (cifar_batch(np.zeros((1, 3072), np.uint8), [Payload(codecs.encode, "x", "rot13")]),
         "_codecs.encode with str and 'rot13'"),
        # numpy's _reconstruct asked to build something other than an ndarray
        (Payload(np.empty(0).__reduce__()[0], np.dtype, (0,), b"b"), "_reconstruct of"),
        # a class the allow-list does not name, under an allowed module
        (cifar_batch(np.ma.zeros((1, 3072), np.uint8), [0]), r"numpy\.ma\.core"),
        # persistent ids
        (None, "persistent ids"),
    ]
    for obj, message in cases:
        if obj is None:
            import io

            class Persistent(pickle.Pickler):
                def persistent_id(self, o):
                    return "x" if isinstance(o, list) else None
            buffer = io.BytesIO()
            Persistent(buffer, protocol=2).dump(cifar_batch(np.zeros((1, 3072), np.uint8), [0]))
            (tmp_path / "test_batch").write_bytes(buffer.getvalue())
        else:
            dump_cifar(tmp_path / "test_batch", obj)
        with pytest.raises(ValueError, match=message):
            load_cifar10(tmp_path, kind="test")
    assert not marker.exists()
