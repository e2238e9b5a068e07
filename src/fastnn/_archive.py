"""Reading the zip and .npy level of a fastnn file without trusting it: every entry's zip sizes
against its .npy header, bounded decompression a chunk at a time, checksums. _Reader (in
_load.py) adds the checks of the metadata and the model."""
import contextlib
import io
import json
import math
import os
import struct
import zipfile
import zlib
from collections import namedtuple

import numpy as np

from ._save import ARRAY_KINDS, FORMAT, FORMAT_VERSION, METADATA
from ._validation import check_path

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


class _Archive:
    """One fastnn file opened for reading at the zip level; every failure is a ValueError naming
    the file."""

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
