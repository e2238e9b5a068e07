"""A corpus of crafted bad files for fastnn's readers: each function writes one file into a
directory and returns its path. tests/test_crafted_files.py checks that every one is refused fast,
with a ValueError naming the file and bounded memory, and that none runs code.

The model files start from a real checkpoint (`checkpoint`) and change one thing; the archives
are written by `write_zip`, which puts down whatever sizes, checksums and compression it is told
(so it can lie where zipfile would not).
"""
import gzip
import json
import pathlib
import struct
import zlib

import numpy as np

import fastnn as fnn
from fastnn import io as fio

MiB = 1 << 20


# -- building blocks -------------------------------------------------------------------------

def checkpoint(directory, name="good.npz"):
    """A real checkpoint: every kind of array (weights, BatchNorm statistics, Adam moments and
    step counts, an extra array) after two training steps."""
    model = fnn.Sequential(fnn.Dense(6, 16, activation="relu"), fnn.BatchNorm(16),
                           fnn.Dropout(0.25), fnn.Dense(16, 4), seed=0)
    optimizer = fnn.optim.Adam(model.parameters(), lr=0.01, amsgrad=True)
    rng = np.random.default_rng(0)
    for _ in range(2):
        X, y = rng.standard_normal((32, 6)).astype(np.float32), rng.integers(0, 4, 32)
        model.train_step(X, y, "softmax_cross_entropy", optimizer)
    path = pathlib.Path(directory) / name
    fnn.save_checkpoint(path, model, optimizer, extra={"epoch": 2, "curve": np.arange(3.0)})
    return path


def npy(array):
    """The .npy bytes of `array` (never pickled)."""
    import io
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def npy_header(shape, dtype, fortran_order=False):
    """The .npy header alone for an array of `shape` and `dtype`."""
    import io
    buffer = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
              "fortran_order": fortran_order, "shape": tuple(shape)}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def members(path):
    """{entry name (without .npy): its .npy bytes} of a zip archive, in order."""
    import zipfile
    with zipfile.ZipFile(path) as zf:
        return {info.filename[:-4]: zf.read(info) for info in zf.infolist()}


def metadata_npy(metadata):
    """The metadata entry; a string "__NESTED_<depth>__" in it becomes lists nested that deep
    (which json.dumps could not write)."""
    import re
    text = re.sub(r'"__NESTED_(\d+)__"', lambda m: "[" * int(m[1]) + "]" * int(m[1]),
                  json.dumps(metadata))
    return npy(np.array(text))


def read_metadata(entries):
    import io
    return json.loads(str(np.lib.format.read_array(io.BytesIO(entries[fio.METADATA]),
                                                   allow_pickle=False)))


class Member:
    """One entry for write_zip: `data` as it goes into the archive (already compressed when
    method is 8), with the sizes and checksum to declare (by default, the true ones)."""

    def __init__(self, name, content=None, method=0, data=None, file_size=None,
                 compress_size=None, crc=None):
        self.name = name if name.endswith(".npy") else name + ".npy"
        if data is None:
            data = content if method == 0 else deflate(content)
        self.data, self.method = data, method
        self.file_size = len(content) if file_size is None else file_size
        self.compress_size = len(data) if compress_size is None else compress_size
        self.crc = (zlib.crc32(content) if crc is None else crc) & 0xFFFFFFFF


def deflate(data):
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def deflated_zeros(n, prefix=b""):
    """A raw deflate stream of `prefix` then n zero bytes, and its CRC, made without holding
    n bytes: a full flush after every MiB makes each MiB's compressed block the same."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = [c.compress(prefix), c.flush(zlib.Z_FULL_FLUSH)]
    crc = zlib.crc32(prefix)
    block = bytes(MiB)
    whole, rest = divmod(n, MiB)
    if whole:
        first = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
        second = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
        assert first == second
        out += [first, second * (whole - 1)]
        for _ in range(whole):
            crc = zlib.crc32(block, crc)
    out += [c.compress(bytes(rest)), c.flush()]
    crc = zlib.crc32(bytes(rest), crc)
    return b"".join(out), crc & 0xFFFFFFFF


def write_zip(path, entries):
    """An archive of `entries` (Members) with exactly the sizes and checksums they declare
    (32-bit sizes: no zip64). A Member with `at` set to another's name gets a directory record
    only, pointing at that one's data (overlapping entries)."""
    local, central, offsets, offset = [], [], {}, 0
    for m in entries:
        name = m.name.encode()
        if getattr(m, "at", None) is None:
            header = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, m.method, 0, 0x21,
                                 m.crc, m.compress_size, m.file_size, len(name), 0) + name
            offsets[m.name] = offset
            local += [header, m.data]
            offset += len(header) + len(m.data)
        central.append(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, m.method,
                                   0, 0x21, m.crc, m.compress_size, m.file_size, len(name), 0,
                                   0, 0, 0, 0, offsets[getattr(m, "at", None) or m.name])
                       + name)
    directory = b"".join(central)
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(central), len(central),
                      len(directory), offset, 0)
    pathlib.Path(path).write_bytes(b"".join(local) + directory + end)
    return pathlib.Path(path)


def rewrite(directory, name, edit_metadata=None, replace=None, drop=()):
    """The good checkpoint written again as `name` with its metadata edited (edit_metadata(m)
    changes the dict in place) and entries replaced ({name: array or .npy bytes}) or dropped."""
    directory = pathlib.Path(directory)
    entries = members(checkpoint(directory, "base.npz"))
    if edit_metadata is not None:
        m = read_metadata(entries)
        edit_metadata(m)
        entries[fio.METADATA] = metadata_npy(m)
    for key, value in (replace or {}).items():
        entries[key] = value if isinstance(value, bytes) else npy(value)
    for key in drop:
        del entries[key]
    return write_zip(directory / name, [Member(k, v) for k, v in entries.items()])


def single_dense_metadata(n_in, n_out):
    return {"format": "fastnn", "format_version": 1, "fastnn_version": fnn.__version__,
            "dtype": "float32", "seed": 0, "training": False,
            "layers": [{"type": "Dense", "config": {"in_features": n_in, "out_features": n_out,
                                                    "activation": "identity", "init": "xavier",
                                                    "alpha": 0.0, "dtype": "float32"},
                        "state": {}}],
            "optimizer": None, "extra": None}


# -- denial of service: sizes that lie, bombs ------------------------------------------------

def huge_declared_dense(directory):
    """13 KB whose metadata declares Dense(30000, 30000) (3.6 GB of float32) over small arrays."""
    def edit(m):
        m["layers"][0]["config"].update(in_features=30000, out_features=30000)
        m["layers"][1]["config"].update(num_features=30000)
    return rewrite(directory, "huge_declared_dense.npz", edit)


def huge_declared_dense_alone(directory):
    """A one-layer Dense(30000, 30000) model file whose arrays are tiny."""
    entries = [Member(fio.METADATA, metadata_npy(single_dense_metadata(30000, 30000))),
               Member("model/0.W", npy(np.zeros((6, 4), np.float32))),
               Member("model/0.b", npy(np.zeros(4, np.float32)))]
    return write_zip(pathlib.Path(directory) / "huge_declared_dense_alone.npz", entries)


def _huge_entry_members(method, n=30000):
    shape = (n, n)
    header = npy_header(shape, np.float32)
    size = len(header) + n * n * 4
    content = header + bytes(64)
    data = content if method == 0 else deflate(content)
    return [Member(fio.METADATA, metadata_npy(single_dense_metadata(n, n))),
            Member("model/0.W", content, method=method, data=data, file_size=size,
                   compress_size=len(data) if method == 8 else size),
            Member("model/0.b", npy(np.zeros(n, np.float32)))]


def stored_entry_claims_gigabytes(directory):
    """A stored Dense(30000, 30000) weight entry whose zip sizes claim 3.6 GB the file lacks."""
    return write_zip(pathlib.Path(directory) / "stored_claims.npz", _huge_entry_members(0))


def deflated_entry_claims_gigabytes(directory):
    """A deflated weight entry of 150 bytes whose zip size claims 3.6 GB uncompressed."""
    return write_zip(pathlib.Path(directory) / "deflated_claims.npz", _huge_entry_members(8))


def zip_bomb(directory, n=5000, name="zip_bomb.npz"):
    """A true zip bomb whose metadata matches: Dense(n, n) of zeros, deflated (n = 5000: 100 MB
    from about 100 KB; every size, header and checksum is right)."""
    header = npy_header((n, n), np.float32)
    data, crc = deflated_zeros(n * n * 4, prefix=header)
    entries = [Member(fio.METADATA, metadata_npy(single_dense_metadata(n, n))),
               Member("model/0.W", method=8, data=data, file_size=len(header) + n * n * 4,
                      crc=crc, content=b""),
               Member("model/0.b", npy(np.zeros(n, np.float32)))]
    return write_zip(pathlib.Path(directory) / name, entries)


def entry_inflates_past_its_size(directory):
    """A bias entry declared (and checksummed) at its true 80 bytes whose deflate stream goes on
    to 100 MB of zeros."""
    entries = members(checkpoint(directory, "base.npz"))
    bias = entries["model/0.b"]
    data, _ = deflated_zeros(100 * MiB, prefix=bias)
    out = [Member(k, v) for k, v in entries.items() if k != "model/0.b"]
    out.append(Member("model/0.b", bias, method=8, data=data))
    return write_zip(pathlib.Path(directory) / "inflates_past.npz", out)


def overlapping_entries(directory):
    """The overlapping-entries bomb: 20 directory records (extra/0 ... extra/19, all referred
    to by the metadata) share one deflated entry of 10 MB of zeros."""
    header = npy_header((10 * MiB,), np.uint8)
    data, crc = deflated_zeros(10 * MiB, prefix=header)
    m = single_dense_metadata(6, 4)
    m["extra"] = {"blobs": [{"__ndarray__": f"extra/{k}"} for k in range(20)]}
    entries = [Member(fio.METADATA, metadata_npy(m)),
               Member("model/0.W", npy(np.zeros((6, 4), np.float32))),
               Member("model/0.b", npy(np.zeros(4, np.float32))),
               Member("extra/0", method=8, data=data, file_size=len(header) + 10 * MiB,
                      crc=crc, content=b"")]
    for k in range(1, 20):
        twin = Member(f"extra/{k}", method=8, data=data, file_size=len(header) + 10 * MiB,
                      crc=crc, content=b"")
        twin.at = "extra/0.npy"
        entries.append(twin)
    return write_zip(pathlib.Path(directory) / "overlap.npz", entries)


def duplicated_entry(directory):
    """The weight entry twice: the second one a different array of the same shape."""
    entries = members(checkpoint(directory, "base.npz"))
    out = [Member(k, v) for k, v in entries.items()]
    out.append(Member("model/0.W", npy(np.full((6, 16), 7.0, np.float32))))
    return write_zip(pathlib.Path(directory) / "duplicated.npz", out)


def huge_metadata(directory):
    """A metadata entry declaring 200 MB of text, as a deflated bomb."""
    header = npy_header((), "<U50000000")
    data, crc = deflated_zeros(200_000_000, prefix=header)
    entries = [Member(fio.METADATA, method=8, data=data, file_size=len(header) + 200_000_000,
                      crc=crc, content=b"")]
    return write_zip(pathlib.Path(directory) / "huge_metadata.npz", entries)


def bzip2_entry(directory):
    """An entry compressed with bzip2 (zip method 12), which fastnn never writes."""
    entries = members(checkpoint(directory, "base.npz"))
    out = []
    for k, v in entries.items():
        m = Member(k, v)
        if k == "model/0.W":
            import bz2
            m = Member(k, v, method=12, data=bz2.compress(v))
        out.append(m)
    return write_zip(pathlib.Path(directory) / "bzip2.npz", out)


def bad_checksum(directory):
    entries = members(checkpoint(directory, "base.npz"))
    out = [Member(k, v, crc=(zlib.crc32(v) ^ 1) if k == "model/0.W" else None)
           for k, v in entries.items()]
    return write_zip(pathlib.Path(directory) / "bad_crc.npz", out)


def header_shape_lies(directory):
    """The weight entry's .npy header claims (6, 1600) over the bytes of a (6, 16) array, with
    zip sizes to match the bytes."""
    entries = members(checkpoint(directory, "base.npz"))
    good = entries["model/0.W"]
    old, new = npy_header((6, 16), np.float32), npy_header((6, 1600), np.float32)
    assert good.startswith(old) and len(old) == len(new)
    entries["model/0.W"] = new + good[len(old):]
    return write_zip(pathlib.Path(directory) / "header_lies.npz",
                     [Member(k, v) for k, v in entries.items()])


def truncations(directory, count=40):
    """The good checkpoint cut at `count` offsets spread over the file (and just before its
    end): a list of paths."""
    good = checkpoint(directory, "base.npz").read_bytes()
    offsets = sorted({int(len(good) * k / count) for k in range(count)} | {len(good) - 1,
                                                                          len(good) - 22})
    paths = []
    for offset in offsets:
        path = pathlib.Path(directory) / f"cut_{offset}.npz"
        path.write_bytes(good[:offset])
        paths.append(path)
    return paths


# -- code in a file --------------------------------------------------------------------------

class Payload:
    """Unpickling this touches `marker`: proof that a pickle ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def pickle_bytes(marker):
    """The .npy bytes of an object array holding a live Payload (numpy pickles it)."""
    import io
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.array([Payload(marker)], dtype=object),
                              allow_pickle=True)
    return buffer.getvalue()


def pickle_in(where):
    def make(directory):
        marker = pathlib.Path(directory) / "pwned"
        return rewrite(directory, f"pickle_{where.replace('/', '_')}.npz",
                       replace={where: pickle_bytes(marker)})
    make.__name__ = f"pickle_in_{where}"
    return make


# -- invalid values --------------------------------------------------------------------------

def _values(name, key, make):
    def crafted(directory):
        entries = members(checkpoint(directory, "base.npz"))
        import io
        array = np.lib.format.read_array(io.BytesIO(entries[key]), allow_pickle=False)
        return rewrite(directory, f"{name}.npz", replace={key: make(array.copy())})
    crafted.__name__ = name
    return crafted


def _put(array, index, value):
    array.reshape(-1)[index] = value
    return array


nan_weight = _values("nan_weight", "model/0.W", lambda a: _put(a, 3, np.nan))
inf_bias = _values("inf_bias", "model/3.b", lambda a: _put(a, 0, np.inf))
negative_running_var = _values("negative_running_var", "model/1.running_var",
                               lambda a: _put(a, 2, -1.0))
nan_running_mean = _values("nan_running_mean", "model/1.running_mean",
                           lambda a: _put(a, 0, np.nan))
negative_second_moment = _values("negative_second_moment", "optimizer/0/exp_avg_sq",
                                 lambda a: _put(a, 0, -1.0))
nan_moment = _values("nan_moment", "optimizer/2/exp_avg", lambda a: _put(a, 0, np.nan))


def _meta(name, edit):
    def crafted(directory):
        return rewrite(directory, f"{name}.npz", edit)
    crafted.__name__ = name
    return crafted


def _group(m):
    return m["optimizer"]["param_groups"][0]


METADATA_EDITS = {
    "training_not_bool": lambda m: m.update(training="yes"),
    "training_int": lambda m: m.update(training=1),
    "seed_float": lambda m: m.update(seed=1.5),
    "seed_negative": lambda m: m.update(seed=-1),
    "dtype_not_str": lambda m: m.update(dtype=32),
    "compute_dtype_unknown": lambda m: m.update(compute_dtype="float16"),
    "compute_dtype_not_str": lambda m: m.update(compute_dtype=["bfloat16"]),
    "compute_dtype_bfloat16_float64": lambda m: m.update(dtype="float64",
                                                         compute_dtype="bfloat16"),
    "layers_empty": lambda m: m.update(layers=[]),
    "layer_not_object": lambda m: m["layers"].__setitem__(0, "Dense"),
    "layer_type_not_str": lambda m: m["layers"][0].update(type=["Dense"]),
    "config_not_object": lambda m: m["layers"][0].update(config=[6, 16]),
    "in_features_str": lambda m: m["layers"][0]["config"].update(in_features="6"),
    "in_features_float": lambda m: m["layers"][0]["config"].update(in_features=6.0),
    "in_features_bool": lambda m: m["layers"][3]["config"].update(out_features=True),
    "dropout_p_str": lambda m: m["layers"][2]["config"].update(p="0.25"),
    "batchnorm_eps_str": lambda m: m["layers"][1]["config"].update(eps="1e-5"),
    "dense_activation_number": lambda m: m["layers"][0]["config"].update(activation=1),
    "dropout_step_negative": lambda m: m["layers"][2]["state"].update(step=-1),
    "dropout_step_str": lambda m: m["layers"][2]["state"].update(step="3"),
    "dropout_seed_float": lambda m: m["layers"][2]["state"].update(seed=0.5),
    "dropout_state_unknown_key": lambda m: m["layers"][2]["state"].update(mask=1),
    "state_on_a_stateless_layer": lambda m: m["layers"][0]["state"].update(step=1),
    "optimizer_not_object": lambda m: m.update(optimizer="Adam"),
    "optimizer_unknown_key": lambda m: m["optimizer"].update(lookahead=5),
    "optimizer_unknown_hyperparameter": lambda m: _group(m).update(foo=1.0),
    "optimizer_unknown_default": lambda m: m["optimizer"]["defaults"].update(foo=1.0),
    "optimizer_lr_str": lambda m: _group(m).update(lr="0.01"),
    "optimizer_lr_infinite": lambda m: _group(m).update(lr=float("inf")),
    "optimizer_lr_nan": lambda m: _group(m).update(lr=float("nan")),
    "optimizer_amsgrad_int": lambda m: _group(m).update(amsgrad=1),
    "optimizer_betas_short": lambda m: _group(m).update(betas=[0.9]),
    "optimizer_betas_str": lambda m: _group(m).update(betas="0.9,0.999"),
    "optimizer_params_not_ints": lambda m: _group(m).update(params=["0", "1"]),
    "optimizer_param_twice": lambda m: _group(m).update(params=[0, 0, 1, 2, 3, 4]),
    "optimizer_step_negative": lambda m: m["optimizer"]["state"]["0"].update(step=-3),
    "optimizer_step_float": lambda m: m["optimizer"]["state"]["0"].update(step=2.0),
    "optimizer_step_bool": lambda m: m["optimizer"]["state"]["0"].update(step=True),
    "optimizer_state_unknown_key": lambda m: m["optimizer"]["state"]["0"].update(
        momentum_buffer={"__ndarray__": "optimizer/0/exp_avg"}),
    "optimizer_state_inline_number": lambda m: m["optimizer"]["state"]["0"].update(
        exp_avg=0.0),
    "optimizer_state_out_of_range": lambda m: m["optimizer"]["state"].update(
        {"99": {"step": 1}}),
    "optimizer_state_key_not_index": lambda m: m["optimizer"]["state"].update({"x": {}}),
    "frozen_not_a_list": lambda m: m["layers"][0].update(frozen="W"),
    "frozen_unknown_parameter": lambda m: m["layers"][0].update(frozen=["Q"]),
    "extra_nested_980": lambda m: m.update(extra={"a": "__NESTED_980__"}),
    "extra_nested_5000": lambda m: m.update(extra={"a": "__NESTED_5000__"}),
    "init_nested_980": lambda m: m["layers"][0]["config"].update(init="__NESTED_980__"),
}
METADATA_CASES = [_meta(name, edit) for name, edit in METADATA_EDITS.items()]


def wrong_dtype_weight(directory):
    """A float64 weight in a float32 model."""
    return rewrite(directory, "wrong_dtype.npz", replace={"model/0.W": np.zeros((6, 16))})


def string_array_entry(directory):
    """A unicode array where a weight should be."""
    return rewrite(directory, "string_entry.npz",
                   replace={"model/0.W": np.full((6, 16), "x")})


def extra_entry(directory):
    return rewrite(directory, "extra_entry.npz", replace={"model/9.W": np.zeros(2, np.float32)})


# -- IDX files for load_idx ------------------------------------------------------------------

def idx_header(code, shape):
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


def gzip_stream(raw_deflate, crc, size):
    """A gzip file around a raw deflate stream."""
    return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + raw_deflate
            + struct.pack("<II", crc, size & 0xFFFFFFFF))


def idx_gzip_bomb(directory):
    """A gzip IDX of 10 labels followed by 256 MB of zeros: about 256 KB on disk."""
    header = idx_header(0x08, (10,)) + bytes(range(10))
    data, crc = deflated_zeros(256 * MiB, prefix=header)
    path = pathlib.Path(directory) / "bomb-labels-idx1-ubyte.gz"
    path.write_bytes(gzip_stream(data, crc, len(header) + 256 * MiB))
    return path


def idx_gzip_trailing_junk(directory):
    """Valid gzip IDX labels, then 100 MB of junk in the same compressed stream."""
    header = idx_header(0x08, (4,)) + bytes(4)
    data, crc = deflated_zeros(100 * MiB, prefix=header)
    path = pathlib.Path(directory) / "junk-labels-idx1-ubyte.gz"
    path.write_bytes(gzip_stream(data, crc, len(header) + 100 * MiB))
    return path


def idx_huge_dims(directory):
    """A 16-byte plain IDX declaring (65535, 65535, 65535) uint8 (2.8e14 bytes)."""
    path = pathlib.Path(directory) / "huge-images-idx3-ubyte"
    path.write_bytes(idx_header(0x08, (65535, 65535, 65535)))
    return path


def idx_gzip_huge_dims(directory):
    """A small gzip IDX declaring (60000, 28, 28) float64 with 1 KB of data."""
    path = pathlib.Path(directory) / "huge-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_header(0x0E, (60000, 28, 28)) + bytes(1000)))
    return path


def idx_lying_dims(directory):
    """A plain IDX whose dims declare 100 values over 50 bytes."""
    path = pathlib.Path(directory) / "lying-labels-idx1-ubyte"
    path.write_bytes(idx_header(0x08, (100,)) + bytes(50))
    return path


def mnist_labels_above_9(directory):
    """An MNIST directory (4 images) whose labels include 10 and 255."""
    directory = pathlib.Path(directory) / "mnist"
    directory.mkdir(exist_ok=True)
    (directory / "train-images-idx3-ubyte").write_bytes(idx_header(0x08, (4, 2, 2)) + bytes(16))
    (directory / "train-labels-idx1-ubyte").write_bytes(idx_header(0x08, (4,))
                                                        + bytes([1, 10, 3, 255]))
    return directory


# -- the corpus ------------------------------------------------------------------------------

# name -> (make(directory) -> path, reader, expected message pattern)
MODEL_CASES = {
    f.__name__: f for f in [
        huge_declared_dense, huge_declared_dense_alone, stored_entry_claims_gigabytes,
        deflated_entry_claims_gigabytes, zip_bomb, entry_inflates_past_its_size,
        overlapping_entries, duplicated_entry, huge_metadata, bzip2_entry, bad_checksum,
        header_shape_lies, pickle_in("model/0.W"), pickle_in(fio.METADATA),
        pickle_in("optimizer/0/exp_avg"), pickle_in("extra/0"), nan_weight, inf_bias,
        negative_running_var, nan_running_mean, negative_second_moment, nan_moment,
        wrong_dtype_weight, string_array_entry, extra_entry, *METADATA_CASES]}
IDX_CASES = {f.__name__: f for f in [idx_gzip_bomb, idx_gzip_trailing_junk, idx_huge_dims,
                                     idx_gzip_huge_dims, idx_lying_dims]}
