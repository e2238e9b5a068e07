# Compiled augmentation kernel; augment_numpy.py is its NumPy twin (same name, signature, results).
#
# Design:
# - Pure data movement (a shift with zeros shifted in, then a mirror), so both backends give the
#   same bits: values are copied, never computed.
# - Each image is first copied to a scratch buffer, so out may be X itself; a row of the output
#   is then zeros, a run copied from the source row (memcpy, or a reversed loop when flipped)
#   and zeros again. No padded copy of the batch is made.
# - Serial: the work is a copy of the batch, memory-bound, and small next to a training step.
# - Argument checks are the twin's (_augment_checks.py), so both backends accept and reject alike.
cimport numpy as cnp
from cython cimport floating
from libc.stdint cimport int64_t, uint8_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

from ._augment_checks import flip_crop_args

cnp.import_array()

__all__ = ["flip_crop"]


cdef void _flip_crop(const floating* x, floating* out, floating* scratch, const uint8_t* flips,
                     const int64_t* dy, const int64_t* dx, Py_ssize_t n, Py_ssize_t C,
                     Py_ssize_t H, Py_ssize_t W) noexcept nogil:
    # out[k, c, i, j] = x[k, c, i + dy[k], j' + dx[k]] (zero outside), j' = W-1-j if flipped.
    cdef Py_ssize_t D = C * H * W, k, c, i, j, lo, hi, source_row, shift
    cdef floating* row
    cdef const floating* source
    for k in range(n):
        memcpy(scratch, x + k * D, D * sizeof(floating))
        shift = dx[k]
        for c in range(C):
            for i in range(H):
                row = out + k * D + (c * H + i) * W
                source_row = i + dy[k]
                if source_row < 0 or source_row >= H:
                    for j in range(W):
                        row[j] = 0
                    continue
                source = scratch + (c * H + source_row) * W
                # Columns whose source lies inside the image: [lo, hi); zeros around them.
                if flips[k]:
                    lo, hi = max(0, shift), min(W, W + shift)
                else:
                    lo, hi = max(0, -shift), min(W, W - shift)
                for j in range(min(lo, W)):
                    row[j] = 0
                if flips[k]:
                    for j in range(lo, hi):
                        row[j] = source[W - 1 - j + shift]
                elif hi > lo:
                    memcpy(row + lo, source + lo + shift, (hi - lo) * sizeof(floating))
                for j in range(max(hi, lo), W):
                    row[j] = 0


def flip_crop(X, flips, dy, dx, *, image_shape, out=None):
    """Shift image k by (dy[k], dx[k]) with zeros shifted in, i.e. the crop of the zero-padded
    image at offset (p + dy, p + dx), then mirror its width when flips[k]: out[k, c, i, j] =
    X[k, c, i + dy, j' + dx] (zero outside the image), j' = W - 1 - j if flipped else j.
    out may be X itself. Returns out."""
    X, flips, dy, dx, (C, H, W), out = flip_crop_args(X, flips, dy, dx, image_shape, out)
    _run_flip_crop(X, flips, dy, dx, C, H, W, out)
    return out


cdef _run_flip_crop(cnp.ndarray X, cnp.ndarray flips, cnp.ndarray dy, cnp.ndarray dx,
                    Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, cnp.ndarray out):
    cdef Py_ssize_t n = X.shape[0]
    cdef bint single = X.descr.type_num == cnp.NPY_FLOAT
    cdef void* x = cnp.PyArray_DATA(X)
    cdef void* o = cnp.PyArray_DATA(out)
    cdef const uint8_t* f = <const uint8_t*> cnp.PyArray_DATA(flips)
    cdef const int64_t* sy = <const int64_t*> cnp.PyArray_DATA(dy)
    cdef const int64_t* sx = <const int64_t*> cnp.PyArray_DATA(dx)
    cdef void* scratch = malloc(C * H * W * (4 if single else 8))
    if scratch == NULL:
        raise MemoryError("flip_crop: no memory for one image")
    with nogil:
        if single:
            _flip_crop[float](<float*> x, <float*> o, <float*> scratch, f, sy, sx, n, C, H, W)
        else:
            _flip_crop[double](<double*> x, <double*> o, <double*> scratch, f, sy, sx, n, C, H,
                               W)
    free(scratch)
