"""The bfloat16 conversion pair (bf16.pyx / bf16_numpy.py): the two agree bit for bit, and agree
with an oracle written another way (nearest of the two neighbouring bfloat16 values, compared in
float64) and with PyTorch's conversion, on odd shapes, both float dtypes, special values, ties,
non-contiguous input; bad arguments are refused naming them."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fastnn import _backend
from fastnn._kernels import CYTHON, NUMPY

pytestmark = [pytest.mark.backend_independent,
              pytest.mark.skipif(CYTHON is None, reason="compiled kernels not built")]

PAIR = [CYTHON, NUMPY]
IDS = ["cython", "numpy"]
# 0 elements, 0-d, odd lengths and shapes; the last runs threaded (the suite's threshold is 65536)
SHAPES = [(0,), (), (1,), (7,), (1001,), (3, 0, 2), (13, 77), (100_003,)]


def _f32(bits):
    return np.asarray(bits, dtype=np.uint32).view(np.float32)


def _random_floats(rng, shape, dtype):
    """Values from every binade and kind: random float32 bit patterns (NaNs, infs, denormals and
    all), for float64 also exact float32 values nudged below float32 precision and random
    float64 bit patterns (most beyond float32's range)."""
    n = int(np.prod(shape))
    x = _f32(rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32))
    if dtype == np.float64:
        x = x.astype(np.float64)
        finite = np.isfinite(x)
        x[finite] *= 1 + rng.standard_normal(finite.sum()) * 2.0**-26
        wild = rng.random(n) < 0.2
        x[wild] = rng.integers(0, 2**63, wild.sum()).view(np.float64)
    return x.reshape(shape)


def _oracle_bits(x):
    """to_bfloat16 of finite or infinite float32/float64 x (no NaN), as uint16, the long way: x
    rounded to float32, then the nearer of the bfloat16 values just below and above |x| in
    magnitude, compared exactly in float64; at a tie, the one with an even last bit."""
    with np.errstate(over="ignore"):
        x = np.asarray(x, dtype=np.float32).reshape(-1)
    u = x.view(np.uint32)
    sign = (u >> 16) & np.uint32(0x8000)
    lo = (u & np.uint32(0x7FFF0000)) >> 16
    exponent = (lo >> 7).astype(np.int64)
    ulp = np.ldexp(1.0, np.where(exponent == 0, -133, exponent - 134))
    lo_value = (lo.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    magnitude = np.abs(x.astype(np.float64))
    with np.errstate(invalid="ignore"):  # inf - inf
        below, above = magnitude - lo_value, lo_value + ulp - magnitude
    up = (above < below) | ((above == below) & (lo % 2 == 1))
    up &= np.isfinite(magnitude)  # inf is its own bfloat16
    return (sign | (lo + up)).astype(np.uint16)


def _same_bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    width = {2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    np.testing.assert_array_equal(a.view(width), b.view(width))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pair_agrees_bit_for_bit_and_with_the_oracle(shape, dtype):
    rng = np.random.default_rng(len(shape) * 1000 + int(np.prod(shape)))
    with np.errstate(invalid="ignore", over="ignore"):
        X = _random_floats(rng, shape, dtype)
    bits = [k.to_bfloat16(X) for k in PAIR]
    rounded = [k.round_bfloat16(X) for k in PAIR]
    _same_bits(bits[0], bits[1])
    _same_bits(rounded[0], rounded[1])
    assert bits[0].shape == X.shape and bits[0].dtype == np.uint16
    assert rounded[0].dtype == X.dtype
    nan = np.isnan(X)
    np.testing.assert_array_equal(bits[0][~nan], _oracle_bits(X[~nan]))
    widened = [k.from_bfloat16(bits[0], dtype=dtype) for k in PAIR]
    _same_bits(widened[0], widened[1])
    _same_bits(widened[0], rounded[0])  # the round trip is round_bfloat16, NaNs included


def test_ties_go_to_even_and_special_values():
    cases = {  # float32 bits -> bfloat16 bits
        0x3F808000: 0x3F80,  # 1 + 2**-8: halfway, the lower neighbour is even
        0x3F818000: 0x3F82,  # halfway, the lower neighbour is odd
        0x3F807FFF: 0x3F80, 0x3F808001: 0x3F81,  # just below, just above halfway
        0xBF808000: 0xBF80, 0xBF818000: 0xBF82,  # the same, negative
        0x3F80FFFF: 0x3F81, 0x3FFF8000: 0x4000,  # rounding up carries into the exponent
        0x00008000: 0x0000, 0x00018000: 0x0002, 0x00000001: 0x0000, 0x00007FFF: 0x0000,
        0x00008001: 0x0001, 0x807FFFFF: 0x8080,  # denormals round like anything else
        0x00000000: 0x0000, 0x80000000: 0x8000,  # +-0.0
        0x7F7F7FFF: 0x7F7F,  # just below halfway past the largest bfloat16: stays finite
        0x7F7F8000: 0x7F80, 0x7F7FFFFF: 0x7F80, 0xFF7FFFFF: 0xFF80,  # overflow -> +-inf
        0x7F800000: 0x7F80, 0xFF800000: 0xFF80,  # +-inf
        0x7FC00000: 0x7FC0, 0xFFC00000: 0xFFC0,  # quiet NaNs keep their sign
        0x7F800001: 0x7FC0, 0x7F80FFFF: 0x7FC0,  # signalling NaNs come out quiet, never inf
        0xFFC12345: 0xFFC1, 0x7FFFFFFF: 0x7FFF,  # top payload bits kept
    }
    X = _f32(list(cases))
    want = np.array(list(cases.values()), np.uint16)
    for kernels in PAIR:
        np.testing.assert_array_equal(kernels.to_bfloat16(X), want)
        _same_bits(kernels.round_bfloat16(X), (want.astype(np.uint32) << 16).view(np.float32))
    finite = ~np.isnan(X)
    np.testing.assert_array_equal(_oracle_bits(X[finite]), want[finite])


def test_float64_is_rounded_through_float32_like_torch():
    # 1 + 2**-8 + 2**-30 is above the halfway point 1 + 2**-8 (rounded directly, it would be
    # 0x3F81), but float32 rounds it to the halfway point, which then goes to even.
    X = np.array([1 + 2**-8 + 2**-30, 1 + 2**-8, 1e300, -1e300, 1e-320, -1e-320, 3.4e38,
                  np.inf, np.nan], np.float64)
    want = np.array([0x3F80, 0x3F80, 0x7F80, 0xFF80, 0x0000, 0x8000, 0x7F80, 0x7F80, 0x7FC0],
                    np.uint16)
    for kernels in PAIR:
        np.testing.assert_array_equal(kernels.to_bfloat16(X), want)
        rounded = kernels.round_bfloat16(X)
        assert rounded.dtype == np.float64
        np.testing.assert_array_equal(rounded, [1.0, 1.0, np.inf, -np.inf, 0.0, -0.0, np.inf,
                                                np.inf, np.nan])


@pytest.mark.parametrize("kernels", PAIR, ids=IDS)
def test_every_bfloat16_widens_exactly_and_converts_back(kernels):
    B = np.arange(2**16, dtype=np.uint16)
    f32 = kernels.from_bfloat16(B)
    np.testing.assert_array_equal(f32.view(np.uint32), B.astype(np.uint32) << 16)
    f64 = kernels.from_bfloat16(B, dtype=np.float64)
    assert f64.dtype == np.float64
    nan = np.isnan(f32)
    np.testing.assert_array_equal(f64[~nan], f32[~nan])  # widening to float64 is exact
    assert np.isnan(f64[nan]).all()
    back = kernels.to_bfloat16(f32)
    np.testing.assert_array_equal(back[~nan], B[~nan])
    np.testing.assert_array_equal(back[nan], B[nan] | 0x0040)  # NaNs come back quiet
    np.testing.assert_array_equal(kernels.to_bfloat16(f64), back)


@pytest.mark.parametrize("kernels", PAIR, ids=IDS)
def test_non_contiguous_input_and_out_buffers(kernels):
    rng = np.random.default_rng(3)
    base = rng.standard_normal((9, 14)).astype(np.float32)
    for X in (base[:, ::2], base.T, base[::-1]):
        np.testing.assert_array_equal(kernels.to_bfloat16(X),
                                      kernels.to_bfloat16(np.ascontiguousarray(X)))
        _same_bits(kernels.round_bfloat16(X), kernels.round_bfloat16(np.ascontiguousarray(X)))
    B = kernels.to_bfloat16(base)
    _same_bits(kernels.from_bfloat16(B.T), kernels.from_bfloat16(B).T.copy())
    out = np.empty((9, 14), np.uint16)
    assert kernels.to_bfloat16(base, out=out) is out
    np.testing.assert_array_equal(out, B)
    widened = np.empty((9, 14), np.float64)
    assert kernels.from_bfloat16(B, out=widened, dtype=np.float64) is widened
    X = base.copy()
    assert kernels.round_bfloat16(X, out=X) is X  # in place
    _same_bits(X, kernels.from_bfloat16(B))


@pytest.mark.parametrize("kernels", PAIR, ids=IDS)
def test_refuses_bad_arguments_naming_them(kernels):
    X = np.ones((3, 4), np.float32)
    B = np.ones((3, 4), np.uint16)
    for name in ("to_bfloat16", "round_bfloat16"):
        convert = getattr(kernels, name)
        for bad in (np.ones(3, np.int64), np.ones(3, np.float16), [1.0, 2.0], 1.0, B):
            with pytest.raises(TypeError, match=f"{name}: X must be a float32 or float64 array"):
                convert(bad)
    with pytest.raises(TypeError, match="to_bfloat16: out must have dtype uint16"):
        kernels.to_bfloat16(X, out=np.empty((3, 4), np.int16))
    with pytest.raises(ValueError, match=r"to_bfloat16: out must have shape \(3, 4\)"):
        kernels.to_bfloat16(X, out=np.empty((4, 3), np.uint16))
    with pytest.raises(ValueError, match="out must be a writeable C-contiguous array"):
        kernels.to_bfloat16(X, out=np.empty((3, 8), np.uint16)[:, ::2])
    readonly = np.empty((3, 4), np.float32)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="round_bfloat16: out must be a writeable"):
        kernels.round_bfloat16(X, out=readonly)
    with pytest.raises(TypeError, match="round_bfloat16: out must have dtype float32"):
        kernels.round_bfloat16(X, out=np.empty((3, 4)))
    for bad in (np.ones(3, np.int16), np.ones(3, np.uint32), X, [1, 2]):
        with pytest.raises(TypeError, match="from_bfloat16: B must be a uint16 array"):
            kernels.from_bfloat16(bad)
    for bad in (None, np.float16, np.int32, "bfloat16", 3):
        with pytest.raises(TypeError, match="from_bfloat16: dtype must be float32 or float64"):
            kernels.from_bfloat16(B, dtype=bad)
    with pytest.raises(TypeError, match="from_bfloat16: out must have dtype float32"):
        kernels.from_bfloat16(B, out=np.empty((3, 4)))
    with pytest.raises(ValueError, match=r"from_bfloat16: out must have shape \(3, 4\)"):
        kernels.from_bfloat16(B, out=np.empty(12, np.float32))


def test_the_backend_switches_the_pair():
    for name, kernels in (("cython", CYTHON), ("numpy", NUMPY)):
        with _backend.use_backend(name):
            for kernel in ("to_bfloat16", "from_bfloat16", "round_bfloat16", "matmul_bf16"):
                assert getattr(_backend.kernels, kernel) is getattr(kernels, kernel)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_agrees_with_torch(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    with np.errstate(invalid="ignore", over="ignore"):
        X = _random_floats(rng, (70_001,), dtype)  # torch's vector loop and its scalar tail
        X[:16] = _f32([0x3F808000, 0x3F818000, 0x00008000, 0x00018000, 0x7F7F7FFF, 0x7F7F8000,
                       0x7F7FFFFF, 0x80000000, 0x7F800000, 0xFF800000, 0x807FFFFF, 1, 0x7FC00000,
                       0xFFC12345, 0x7F800001, 0x3F80FFFF]).astype(dtype)
    want = torch.from_numpy(X).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    nan = np.isnan(X)
    assert nan.any()
    for kernels in PAIR:
        got = kernels.to_bfloat16(X)
        np.testing.assert_array_equal(got[~nan], want[~nan])
        # torch's NaN bits depend on its code path (0xFFFF, 0x7FC0); ours are a NaN too
        assert np.isnan(kernels.from_bfloat16(got[nan])).all()
        assert np.isnan(kernels.from_bfloat16(want[nan])).all()


# ---- matmul_bf16: the emulated bfloat16 GEMM (operands rounded, float32 multiply)

GEMM_SHAPES = [(1, 1, 1), (7, 33, 1), (1, 7, 33), (33, 300, 7), (64, 128, 96)]


def _operands(rng, m, k, n, trans_a, trans_b):
    A = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    B = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    return A, B


def _op(X, trans):
    return X.T if trans else X


@pytest.mark.parametrize("m, k, n", GEMM_SHAPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("accumulate", [False, True])
def test_matmul_bf16_is_the_float32_product_of_rounded_operands(m, k, n, trans_a, trans_b,
                                                                  accumulate):
    rng = np.random.default_rng(m * 10000 + k * 100 + n)
    A, B = _operands(rng, m, k, n, trans_a, trans_b)
    start = rng.standard_normal((m, n)).astype(np.float32)
    a, b = NUMPY.round_bfloat16(A), NUMPY.round_bfloat16(B)
    want = _op(a, trans_a) @ _op(b, trans_b) + (start if accumulate else 0)
    exact = _op(a, trans_a).astype(np.float64) @ _op(b, trans_b).astype(np.float64)
    scale = np.abs(_op(a, trans_a)) @ np.abs(_op(b, trans_b)) + np.abs(start)
    results = []
    for kernels in PAIR:
        out = start.copy() if accumulate else np.full((m, n), np.nan, np.float32)
        A0, B0 = A.copy(), B.copy()
        got = kernels.matmul_bf16(A, B, out=out, trans_a=trans_a, trans_b=trans_b,
                                  accumulate=accumulate)
        assert got is out and got.dtype == np.float32
        _same_bits(A, A0)  # the operands are left alone
        _same_bits(B, B0)
        # float32 sums of exact products (bfloat16 * bfloat16 fits in float32) in some order
        bound = 2 * k * 2.0**-24 * scale
        assert np.all(np.abs(got - want) <= bound)
        assert np.all(np.abs(got - (exact + (start if accumulate else 0))) <= bound)
        results.append(got)
    assert np.all(np.abs(results[0] - results[1]) <= 2 * k * 2.0**-24 * scale)


def test_matmul_bf16_is_within_bfloat16_rounding_of_the_float32_product():
    rng = np.random.default_rng(5)
    A = rng.standard_normal((128, 512)).astype(np.float32)
    B = rng.standard_normal((512, 64)).astype(np.float32)
    f32 = A @ B
    exact = A.astype(np.float64) @ B.astype(np.float64)
    scale = np.abs(A).astype(np.float64) @ np.abs(B)
    for kernels in PAIR:
        got = kernels.matmul_bf16(A, B)
        # each product a * b is off by at most (1 + 2**-8)**2 - 1 relative (both operands
        # rounded to 8 significant bits), plus float32 summation of 512 terms
        bound = (2.0**-7 + 2.0**-16 + 2 * 512 * 2.0**-24) * scale
        assert np.all(np.abs(got - exact) <= bound)
        assert np.all(np.abs(got - f32) <= bound)
        # and it really is coarser than float32: the typical error is bfloat16's, ~100x
        # float32's
        err_bf16 = np.linalg.norm(got - exact) / np.linalg.norm(exact)
        err_f32 = np.linalg.norm(f32 - exact) / np.linalg.norm(exact)
        assert 2.0**-12 < err_bf16 < 2.0**-7
        assert err_bf16 > 30 * err_f32


@pytest.mark.parametrize("kernels", PAIR, ids=IDS)
def test_matmul_bf16_converts_inputs_and_refuses_bad_arguments(kernels):
    rng = np.random.default_rng(8)
    A64 = rng.standard_normal((5, 6))
    B = np.asfortranarray(rng.standard_normal((6, 4)).astype(np.float32))
    strided = rng.standard_normal((5, 12)).astype(np.float32)[:, ::2]
    want = (NUMPY.round_bfloat16(A64.astype(np.float32)) @ NUMPY.round_bfloat16(B))
    class Subclass(np.ndarray):
        pass

    # float64 and strided A are copied (and the copies rounded in place); np.asarray of a
    # subclass is a view of the caller's memory, which must not be rounded
    for A in (A64, strided, strided.copy().view(Subclass)):
        A0 = np.array(A, copy=True)
        got = kernels.matmul_bf16(A, B)
        assert got.dtype == np.float32 and got.shape == (5, 4) and type(got) is np.ndarray
        np.testing.assert_array_equal(np.asarray(A), A0)
        if A is A64:
            assert np.all(np.abs(got - want) <= 12 * 2.0**-24 * (np.abs(want) + 1))
    ints = kernels.matmul_bf16(np.arange(6).reshape(2, 3), np.ones((3, 2), np.int64))
    np.testing.assert_array_equal(ints, [[3, 3], [12, 12]])
    A = np.ones((3, 4), np.float32)
    with pytest.raises(TypeError, match="matmul_bf16: out must have dtype float32"):
        kernels.matmul_bf16(A, A, out=np.empty((3, 3)), trans_b=True)
    with pytest.raises(ValueError, match="matmul_bf16: op\\(A\\) is \\(3, 4\\)"):
        kernels.matmul_bf16(A, A)
    with pytest.raises(ValueError, match="matmul_bf16: accumulate=True needs out"):
        kernels.matmul_bf16(A, A, trans_b=True, accumulate=True)
    with pytest.raises(TypeError, match="matmul_bf16: trans_a must be True or False"):
        kernels.matmul_bf16(A, A, trans_a=1)
    with pytest.raises(ValueError, match="matmul_bf16: A must be 2-D"):
        kernels.matmul_bf16(np.ones(3), A)
    with pytest.raises(TypeError, match="matmul_bf16: B must hold real numbers"):
        kernels.matmul_bf16(A, np.ones((4, 2), complex))


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(st.sampled_from([np.float32, np.float64]),
                  hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=9),
                  elements=st.floats(width=32)),
       st.booleans())
def test_property_pair_agrees_and_round_trips(X, transpose):
    if transpose:
        X = X.T  # non-contiguous when 2-d or more
    bits = [k.to_bfloat16(X) for k in PAIR]
    _same_bits(bits[0], bits[1])
    nan = np.isnan(X)
    np.testing.assert_array_equal(bits[0][~nan], _oracle_bits(X[~nan]).reshape(-1))
    rounded = CYTHON.round_bfloat16(X)
    _same_bits(rounded, NUMPY.round_bfloat16(X))
    _same_bits(CYTHON.from_bfloat16(bits[0], dtype=X.dtype), rounded)
    # Rounding is idempotent and within half a bfloat16 ulp (2**-8 relative) of the input.
    _same_bits(CYTHON.round_bfloat16(rounded), rounded)
    finite = np.isfinite(X) & np.isfinite(rounded)
    assert np.all(np.abs(rounded[finite].astype(np.float64) - X[finite])
                  <= np.abs(X[finite].astype(np.float64)) * 2.0**-8 + 2.0**-134)
