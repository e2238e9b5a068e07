# Compiled dropout kernels; dropout_numpy.py is their NumPy twin (same names, signatures, results).
#
# Design:
# - Random numbers come from a counter-based hash, not a generator with state: element i of a call
#   is kept iff (mix64(key + i * GOLDEN64) >> 32) >= floor(p * 2**32), mix64 being the splitmix64
#   finalizer (see fastnn/_hash.py, which also derives the per-call key from (seed, layer, step)). Any
#   element's decision is computed on its own, so threads take any chunks of the flat range and the
#   mask is the same for every thread count, and the same as the twin's, bit for bit.
# - The forward pass makes the mask and applies it in one pass over the activations (out may be
#   X, in place); the mask is one uint8 per unit. Kept values are x * scale and dropped ones
#   x * 0, the twin's (x * mask) * scale exactly, so the values are bit-identical too.
# - The flat range is cut into fixed blocks, split across OpenMP threads above
#   FNN_PARALLEL_MIN_WORK; each block is a plain loop that GCC/Clang vectorize.
# - Argument checks are the twin's (_dropout_checks.py), so both backends accept and reject alike.
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport uint8_t, uint64_t

from .op cimport Op

from .._hash import dropout_key
from ._dropout_checks import dropout_backward_args, dropout_forward_args

cnp.import_array()

__all__ = ["dropout_forward", "dropout_backward"]

cdef extern from "kernels.h" nogil:
    const long FNN_PARALLEL_MIN_WORK

cdef extern from *:
    """
    /* splitmix64's finalizer of key + i * 2**64/golden ratio (the constants of fastnn/_hash.py). */
    static inline uint64_t fnn_dropout_hash(uint64_t key, uint64_t i) {
        uint64_t z = key + i * 0x9E3779B97F4A7C15ULL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
    """
    uint64_t fnn_dropout_hash(uint64_t key, uint64_t i) noexcept nogil

cdef uint64_t _dropout_key(object seed, object index, object step) except? 0:
    # _checks.dropout_key in C, for the compiled training step (that function took 1.4 us, a
    # noticeable part of a small model's step): each part p is folded in as
    # key = mix64((key ^ p) + GOLDEN64), which is fnn_dropout_hash(key ^ p, 1). Anything but
    # plain ints that fit in 64 bits goes to the Python function (it reduces larger seeds mod
    # 2**64 and refuses the rest).
    cdef uint64_t parts[3]
    cdef uint64_t key = 0
    cdef int i
    if type(seed) is not int or type(index) is not int or type(step) is not int:
        return dropout_key(seed, index, step)
    try:
        parts[0], parts[1], parts[2] = seed, index, step
    except OverflowError:
        return dropout_key(seed, index, step)
    for i in range(3):
        key = fnn_dropout_hash(key ^ parts[i], 1)
    return key


cdef enum:
    # Elements per block handed to a thread (a multiple of any SIMD width).
    BLOCK = 8192
    # Relative cost of one forward element (the hash is a few 64-bit multiplies), for the
    # single-thread threshold.
    FORWARD_COST = 4


cdef inline void _forward_block(const floating* x, floating* out, uint8_t* mask, Py_ssize_t start,
                                Py_ssize_t stop, uint64_t key, uint64_t threshold,
                                floating scale) noexcept nogil:
    # out[i] = x[i] * (scale or 0) and mask[i] = kept, for start <= i < stop.
    cdef Py_ssize_t i
    cdef bint keep
    for i in range(start, stop):
        keep = (fnn_dropout_hash(key, <uint64_t> i) >> 32) >= threshold
        mask[i] = keep
        out[i] = x[i] * (scale if keep else 0)


cdef inline void _backward_block(const floating* da, const uint8_t* mask, floating* dx,
                                 Py_ssize_t start, Py_ssize_t stop, floating scale) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(start, stop):
        dx[i] = da[i] * (scale if mask[i] != 0 else 0)


cdef void _dropout_forward(const floating* x, floating* out, uint8_t* mask, Py_ssize_t size,
                           uint64_t key, uint64_t threshold, floating scale,
                           bint threaded) noexcept nogil:
    cdef Py_ssize_t blocks = (size + BLOCK - 1) // BLOCK
    cdef Py_ssize_t b
    if threaded:  # (both branches: see kernels.h)
        for b in prange(blocks, schedule="static"):
            _forward_block(x, out, mask, b * BLOCK, min(size, (b + 1) * BLOCK), key, threshold,
                           scale)
    else:
        _forward_block(x, out, mask, 0, size, key, threshold, scale)


cdef void _dropout_backward(const floating* da, const uint8_t* mask, floating* dx,
                            Py_ssize_t size, floating scale, bint threaded) noexcept nogil:
    cdef Py_ssize_t blocks = (size + BLOCK - 1) // BLOCK
    cdef Py_ssize_t b
    if threaded:
        for b in prange(blocks, schedule="static"):
            _backward_block(da, mask, dx, b * BLOCK, min(size, (b + 1) * BLOCK), scale)
    else:
        _backward_block(da, mask, dx, 0, size, scale)


cdef inline void* _data(cnp.ndarray a):
    return cnp.PyArray_DATA(a)


def dropout_forward(X, *, p, key, out=None, mask=None):
    """Inverted dropout: out = X * mask / (1 - p), with a fresh mask drawn from `key`.

    X is (N, D); p is the probability of dropping a unit, in [0, 1); key (an integer in
    [0, 2**64), see _checks.dropout_key) selects the random stream. mask (N, D) uint8 gets 1 for
    kept units, 0 for dropped ones; the mask is made and applied in one pass. out may be X itself.
    Returns (out, mask).
    """
    X, out, mask, key, threshold, scale = dropout_forward_args(X, p, key, out, mask)
    _run_forward(X, out, mask, key, threshold, scale)
    return out, mask


cdef _run_forward(cnp.ndarray X, cnp.ndarray out, cnp.ndarray mask, uint64_t key,
                  uint64_t threshold, double scale):
    cdef Py_ssize_t size = X.size
    cdef bint threaded = size * FORWARD_COST >= FNN_PARALLEL_MIN_WORK
    cdef bint single = X.descr.type_num == cnp.NPY_FLOAT
    cdef void* x = _data(X)
    cdef void* o = _data(out)
    cdef uint8_t* m = <uint8_t*> _data(mask)
    with nogil:
        if single:
            _dropout_forward[float](<float*> x, <float*> o, m, size, key, threshold,
                                    <float> scale, threaded)
        else:
            _dropout_forward[double](<double*> x, <double*> o, m, size, key, threshold, scale,
                                     threaded)


def dropout_backward(dA, mask, *, p, dX=None):
    """dX = dA * mask / (1 - p), the gradient of dropout_forward given its mask.

    dA and mask are (N, D); mask is uint8 or bool, nonzero where a unit was kept. dX may be dA
    itself. Returns dX.
    """
    dA, mask, dX, scale = dropout_backward_args(dA, mask, p, dX)
    _run_backward(dA, mask, dX, scale)
    return dX


cdef _run_backward(cnp.ndarray dA, cnp.ndarray mask, cnp.ndarray dX, double scale):
    cdef Py_ssize_t size = dA.size
    cdef bint threaded = size >= FNN_PARALLEL_MIN_WORK
    cdef bint single = dA.descr.type_num == cnp.NPY_FLOAT
    cdef void* da = _data(dA)
    cdef const uint8_t* m = <const uint8_t*> _data(mask)
    cdef void* dx = _data(dX)
    with nogil:
        if single:
            _dropout_backward[float](<float*> da, m, <float*> dx, size, <float> scale, threaded)
        else:
            _dropout_backward[double](<double*> da, m, <double*> dx, size, scale, threaded)


# The Dropout layer's op in the compiled training step (op.pxd, step.pyx): these kernels' entry
# points on the layer's own, already checked arrays.
def dropout_key_of(seed, index, step):
    """The key DropoutOp draws its mask with (for tests: it must be fastnn._hash.dropout_key's)."""
    return _dropout_key(seed, index, step)


cdef class DropoutOp(Op):
    # `layer` has the stream's seed, index and step (fastnn.Dropout); each forward draws the mask
    # of (seed, index, step) and advances step, as Dropout.forward does.
    cdef cnp.ndarray mask
    cdef uint64_t threshold
    cdef double scale

    def __init__(self, layer, input, output, grad_input, mask, uint64_t threshold, double scale):
        self.layer, self.input, self.output, self.grad_input = layer, input, output, grad_input
        self.mask, self.threshold, self.scale = mask, threshold, scale

    cdef int forward(self) except -1:
        layer = self.layer
        cdef uint64_t key = _dropout_key(layer.seed, layer.index, layer.step)
        layer.step += 1
        _run_forward(self.input, self.output, self.mask, key, self.threshold, self.scale)
        return 0

    cdef int backward(self, cnp.ndarray grad_output) except -1:
        if self.grad_input is not None:
            _run_backward(grad_output, self.mask, self.grad_input, self.scale)
        return 0
