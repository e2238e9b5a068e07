"""The kernels' bfloat16 options, compiled against their NumPy twins: dense's round_bf16 (the
epilogue stores act(Z + b) rounded to bfloat16; the backward sums db from the unrounded dZ and
stores dZ rounded) and the optimizer updates' bf16_copy.

The rounding is exact, so each backend's rounded result is bit for bit round_bfloat16 of its own
unrounded one. Across backends the activations agree only to float32 tolerance, and a one-ulp
float32 difference can move a value across a bfloat16 rounding boundary: there the backends are
compared within one bfloat16 ulp (plus the float32 tolerance test_kernels.py uses), and bit for
bit where both compute the same float32 (identity, relu, leaky_relu, no GEMM in between).
"""
import math

import numpy as np
import pytest

from fastnn import _activations, _kernels

from _support import RTOL, assert_close

C = _kernels.CYTHON
P = _kernels.NUMPY

pytestmark = [
    pytest.mark.backend_independent,
    pytest.mark.skipif(C is None, reason="the compiled backend is not built"),
]

F32 = np.float32
TEST_ALPHA = {"leaky_relu": 0.1, "elu": 1.3}
ACTIVATIONS = [(spec.name, TEST_ALPHA.get(spec.name, spec.alpha or 0.0))
               for spec in _activations.TABLE]
ACT_IDS = [a for a, _ in ACTIVATIONS]
# The same float32 arithmetic on both backends: their results agree bit for bit.
EXACT = {"identity", "relu", "leaky_relu"}
# Odd shapes; the last is above the suite's threading threshold (conftest.py: 65536 elements).
SHAPES = [(1, 1), (7, 13), (33, 65), (130, 513)]
DENSE_SHAPES = [(1, 1, 1), (7, 5, 13), (33, 17, 65)]


def bf16_ulp(x):
    """The spacing of bfloat16 values at |x| (8 significand bits; denormal spacing near 0)."""
    x = np.abs(np.asarray(x, np.float64))
    exponent = np.floor(np.log2(np.maximum(x, 2.0**-126)))
    return np.ldexp(1.0, (exponent - 7).astype(int))


def assert_bf16_values(a):
    """Every entry of the float32 array a is a bfloat16 value."""
    assert a.dtype == F32
    np.testing.assert_array_equal(a.view(np.uint32) & np.uint32(0xFFFF), 0)


def assert_backends_agree(got, want, act, scale):
    """Rounded results of the two backends: bit for bit where they compute the same float32,
    else within one bfloat16 ulp plus the float32 tolerance relative to `scale`."""
    if act in EXACT:
        np.testing.assert_array_equal(got, want)
        return
    bound = bf16_ulp(np.maximum(np.abs(got), np.abs(want))) + RTOL[np.dtype(F32)] * scale
    assert np.all(np.abs(got.astype(np.float64) - want) <= bound)


def bias_arrays(rng, n, m):
    Z = (2 * rng.standard_normal((n, m))).astype(F32)
    b = rng.standard_normal(m).astype(F32)
    dA = rng.standard_normal((n, m)).astype(F32)
    return Z, b, dA


def dense_arrays(rng, n, k, m):
    X = rng.standard_normal((n, k)).astype(F32)
    W = (rng.standard_normal((k, m)) * (1.5 / math.sqrt(k))).astype(F32)
    b = rng.standard_normal(m).astype(F32)
    dA = rng.standard_normal((n, m)).astype(F32)
    return X, W, b, dA


# ------------------------------------------------------------------------------------------------
# dense: round_bf16


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("act,alpha", ACTIVATIONS, ids=ACT_IDS)
def test_bias_act_forward_rounds_its_output(rng, act, alpha, shape):
    Z, b, _ = bias_arrays(rng, *shape)
    results = {}
    for kernels in (C, P):
        for bias in (b, None):
            plain = kernels.bias_act_forward(Z, bias, activation=act, alpha=alpha)
            rounded = kernels.bias_act_forward(Z, bias, activation=act, alpha=alpha,
                                               round_bf16=True)
            np.testing.assert_array_equal(rounded, kernels.round_bfloat16(plain))
            results[kernels.name, bias is None] = rounded
        # in place (out=Z), as the compiled step runs it
        inplace = Z.copy()
        assert kernels.bias_act_forward(inplace, b, activation=act, alpha=alpha, out=inplace,
                                        round_bf16=True) is inplace
        np.testing.assert_array_equal(inplace, results[kernels.name, False])
    for no_bias in (False, True):
        got, want = results["cython", no_bias], results["numpy", no_bias]
        assert_bf16_values(got)
        assert_backends_agree(got, want, act, float(np.abs(want).max()))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("act,alpha", ACTIVATIONS, ids=ACT_IDS)
def test_bias_act_backward_sums_db_unrounded_and_stores_dZ_rounded(rng, act, alpha, shape):
    Z, b, dA = bias_arrays(rng, *shape)
    A = P.bias_act_forward(Z, b, activation=act, alpha=alpha, round_bf16=True)
    db0 = rng.standard_normal(shape[1]).astype(F32)
    results = {}
    for kernels in (C, P):
        dZ, db = kernels.bias_act_backward(dA, A, activation=act, alpha=alpha,
                                           db=np.empty(shape[1], F32))
        dZ_r, db_r = kernels.bias_act_backward(dA, A, activation=act, alpha=alpha,
                                               db=np.empty(shape[1], F32), round_bf16=True)
        np.testing.assert_array_equal(dZ_r, kernels.round_bfloat16(dZ))
        np.testing.assert_array_equal(db_r, db)  # from the unrounded dZ
        _, db_acc = kernels.bias_act_backward(dA, A, activation=act, alpha=alpha, db=db0.copy(),
                                              accumulate=True)
        _, db_acc_r = kernels.bias_act_backward(dA, A, activation=act, alpha=alpha,
                                                db=db0.copy(), accumulate=True, round_bf16=True)
        np.testing.assert_array_equal(db_acc_r, db_acc)
        # no bias gradient (an activation layer), and dZ written over dA
        alias = dA.copy()
        dZ_n, db_n = kernels.bias_act_backward(alias, A, activation=act, alpha=alpha, dZ=alias,
                                               round_bf16=True)
        assert db_n is None and dZ_n is alias
        np.testing.assert_array_equal(dZ_n, dZ_r)
        results[kernels.name] = dZ_r, db_r
    (dZ_c, db_c), (dZ_p, db_p) = results["cython"], results["numpy"]
    assert_bf16_values(dZ_c)
    scale = float(np.abs(dA).max()) * max(1.0, alpha)
    assert_backends_agree(dZ_c, dZ_p, act, scale)
    assert_close(db_c, db_p, scale=float(np.abs(dA).sum(axis=0).max()) * max(1.0, alpha))


@pytest.mark.parametrize("shape", DENSE_SHAPES, ids=str)
@pytest.mark.parametrize("act,alpha", ACTIVATIONS, ids=ACT_IDS)
def test_dense_forward_rounds_after_the_activation(rng, act, alpha, shape):
    X, W, b, _ = dense_arrays(rng, *shape)
    results = {}
    for kernels in (C, P):
        plain = kernels.dense_forward(X, W, b, activation=act, alpha=alpha)
        rounded = kernels.dense_forward(X, W, b, activation=act, alpha=alpha, round_bf16=True)
        np.testing.assert_array_equal(rounded, kernels.round_bfloat16(plain))
        results[kernels.name] = rounded
    assert_bf16_values(results["cython"])
    # The GEMMs may sum in another order: compared like the activations that differ.
    got, want = results["cython"], results["numpy"]
    bound = (bf16_ulp(np.maximum(np.abs(got), np.abs(want)))
             + RTOL[np.dtype(F32)] * float(np.abs(want).max()))
    assert np.all(np.abs(got.astype(np.float64) - want) <= bound)


@pytest.mark.parametrize("shape", DENSE_SHAPES, ids=str)
@pytest.mark.parametrize("act,alpha", ACTIVATIONS, ids=ACT_IDS)
def test_dense_backward_multiplies_the_rounded_dZ(rng, act, alpha, shape):
    X, W, b, dA = dense_arrays(rng, *shape)
    n, k, m = shape
    A = P.dense_forward(X, W, b, activation=act, alpha=alpha, round_bf16=True)
    results = {}
    for kernels in (C, P):
        dZ = np.empty((n, m), F32)
        dX, dW, db = kernels.dense_backward(dA, X, W, A, activation=act, alpha=alpha, dZ=dZ,
                                            round_bf16=True)
        plain_dZ, plain_db = kernels.bias_act_backward(dA, A, activation=act, alpha=alpha,
                                                       db=np.empty(m, F32))
        np.testing.assert_array_equal(dZ, kernels.round_bfloat16(plain_dZ))
        np.testing.assert_array_equal(db, plain_db)
        # dW and dX are the products of that rounded dZ (an identity layer given it as dA)
        want_dX, want_dW, _ = kernels.dense_backward(dZ, X, W, A, activation="identity")
        np.testing.assert_array_equal(dW, want_dW)
        np.testing.assert_array_equal(dX, want_dX)
        none, dW1, db1 = kernels.dense_backward(dA, X, W, A, activation=act, alpha=alpha,
                                                need_dX=False, round_bf16=True)
        assert none is None
        np.testing.assert_array_equal(dW1, dW)
        np.testing.assert_array_equal(db1, db)
        results[kernels.name] = dX, dW, db
    # Across backends, a dZ entry may differ by one bfloat16 ulp, which moves dX and dW by that
    # much times |X| or |W|: tolerances scaled by those sums.
    adA = np.abs(dA.astype(np.float64)) * max(1.0, alpha)
    dX_scale = float((adA @ np.abs(W.T)).max())
    dW_scale = float((np.abs(X.T) @ adA).max())
    exact = act in EXACT
    for got, want, scale in zip(results["cython"], results["numpy"],
                                (dX_scale, dW_scale, float(adA.sum(axis=0).max()))):
        assert_close(got, want, scale=scale, rtol=RTOL[np.dtype(F32)] if exact else 2.0**-7)


@pytest.mark.parametrize("kernel", ["bias_act_forward", "bias_act_backward", "dense_forward",
                                    "dense_backward"])
def test_round_bf16_false_is_the_default_and_leaves_results_unrounded(rng, kernel):
    X, W, b, dA = dense_arrays(rng, 7, 5, 13)
    Z = X @ W
    A = P.dense_forward(X, W, b, activation="tanh")
    args = {"bias_act_forward": (Z, b), "bias_act_backward": (dA, A),
            "dense_forward": (X, W, b), "dense_backward": (dA, X, W, A)}[kernel]
    for kernels in (C, P):
        call = getattr(kernels, kernel)
        default = call(*args, activation="tanh")
        explicit = call(*args, activation="tanh", round_bf16=False)
        rounded = call(*args, activation="tanh", round_bf16=True)
        default, explicit, rounded = (x if isinstance(x, tuple) else (x,)
                                      for x in (default, explicit, rounded))
        for d, e in zip(default, explicit):
            np.testing.assert_array_equal(d, e)
        # the first result (out, dZ or dX) holds float32 values, not bfloat16 ones
        assert (default[0].view(np.uint32) & np.uint32(0xFFFF)).any()
        assert not np.array_equal(default[0], rounded[0])


def _dense_calls(dtype):
    """Each dense kernel with float arrays of `dtype` (the dtype it computes in)."""
    rng = np.random.default_rng(0)
    X, W, b, dA = (a.astype(dtype) for a in dense_arrays(rng, 3, 4, 5))
    A = np.tanh(X @ W + b)
    return {
        "bias_act_forward": lambda k, **kw: k.bias_act_forward(X @ W, b, **kw),
        "bias_act_backward": lambda k, **kw: k.bias_act_backward(dA, A, db=np.zeros(5, dtype),
                                                                 **kw),
        "dense_forward": lambda k, **kw: k.dense_forward(X, W, b, **kw),
        "dense_backward": lambda k, **kw: k.dense_backward(dA, X, W, A, **kw),
    }


@pytest.mark.parametrize("kernel", ["bias_act_forward", "bias_act_backward", "dense_forward",
                                    "dense_backward"])
def test_round_bf16_refuses_float64_and_non_bools_on_both(kernel):
    for kernels in (C, P):
        call = _dense_calls(np.float64)[kernel]
        with pytest.raises(ValueError, match=f"{kernel}: round_bf16=True needs float32"):
            call(kernels, activation="tanh", round_bf16=True)
        call(kernels, activation="tanh", round_bf16=False)  # float64 without it is fine
        call = _dense_calls(F32)[kernel]
        for value in (1, "yes", None, 1.0):
            with pytest.raises(TypeError, match=f"{kernel}: round_bf16 must be True or False"):
                call(kernels, activation="tanh", round_bf16=value)
        call(kernels, activation="tanh", round_bf16=np.bool_(True))


def test_round_bf16_converts_inputs_as_the_kernels_do(rng):
    """Non-contiguous and other-dtype inputs are converted to the kernel's dtype (that of W, or
    of Z/A) as without round_bf16: the results are those of the converted arrays."""
    X, W, b, dA = dense_arrays(rng, 9, 6, 11)
    A = P.dense_forward(X, W, b, activation="elu", alpha=1.0, round_bf16=True)
    strided_X = np.zeros((18, 12), F32)[::2, ::2]
    strided_X[...] = X
    Z = X @ W
    int_b = np.arange(-5, 6)
    for kernels in (C, P):
        want = kernels.dense_forward(X, W, b, activation="elu", alpha=1.0, round_bf16=True)
        # (float64 X and b hold float32 values here, so converting them loses nothing)
        for x in (strided_X, np.asfortranarray(X), X.astype(np.float64)):
            got = kernels.dense_forward(x, W, b.astype(np.float64), activation="elu", alpha=1.0,
                                        round_bf16=True)
            np.testing.assert_array_equal(got, want)
        want = kernels.dense_backward(dA, X, W, A, activation="elu", alpha=1.0, round_bf16=True)
        got = kernels.dense_backward(np.asfortranarray(dA), strided_X, W, A.astype(np.float64),
                                     activation="elu", alpha=1.0, round_bf16=True)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
        want = kernels.bias_act_forward(Z, int_b.astype(F32), activation="sigmoid",
                                        round_bf16=True)
        got = kernels.bias_act_forward(np.asfortranarray(Z), int_b, activation="sigmoid",
                                       round_bf16=True)
        np.testing.assert_array_equal(got, want)
        want = kernels.bias_act_backward(dA, A, activation="elu", alpha=1.0, round_bf16=True)
        got = kernels.bias_act_backward(dA.astype(np.float64)[:, ::-1][:, ::-1], A,
                                        activation="elu", alpha=1.0, round_bf16=True)
        np.testing.assert_array_equal(got[0], want[0])


# ------------------------------------------------------------------------------------------------
# optimizer updates: bf16_copy

UPDATES = {
    "sgd": lambda k, p, g, s, step, **kw: k.sgd_update(p, g, None, lr=0.1, **kw),
    "sgd_weight_decay": lambda k, p, g, s, step, **kw: k.sgd_update(
        p, g, None, lr=0.1, weight_decay=0.01, **kw),
    "sgd_momentum": lambda k, p, g, s, step, **kw: k.sgd_update(
        p, g, s[0], lr=0.1, momentum=0.9, first_step=step == 1, **kw),
    "sgd_nesterov": lambda k, p, g, s, step, **kw: k.sgd_update(
        p, g, s[0], lr=0.1, momentum=0.9, nesterov=True, dampening=0.0, first_step=step == 1,
        **kw),
    "adagrad": lambda k, p, g, s, step, **kw: k.adagrad_update(
        p, g, s[0], lr=0.1, lr_decay=0.01, weight_decay=0.01, step=step, **kw),
    "rmsprop": lambda k, p, g, s, step, **kw: k.rmsprop_update(p, g, s[0], None, None, lr=0.01,
                                                               **kw),
    "rmsprop_centered_momentum": lambda k, p, g, s, step, **kw: k.rmsprop_update(
        p, g, s[0], s[1], s[2], lr=0.01, centered=True, momentum=0.9, weight_decay=0.01, **kw),
    "adam": lambda k, p, g, s, step, **kw: k.adam_update(p, g, s[0], s[1], None, lr=0.01,
                                                         step=step, **kw),
    "adam_amsgrad": lambda k, p, g, s, step, **kw: k.adam_update(
        p, g, s[0], s[1], s[2], lr=0.01, weight_decay=0.01, step=step, amsgrad=True, **kw),
    "adamw": lambda k, p, g, s, step, **kw: k.adam_update(
        p, g, s[0], s[1], None, lr=0.01, weight_decay=0.1, step=step,
        decoupled_weight_decay=True, **kw),
}
# Odd shapes; with a copy the last two are updated in pieces (of 8192), which the last one also
# spreads over threads (above the suite's 65536 threshold).
UPDATE_SHAPES = [(1,), (7, 13), (33, 65), (20_001,), (70_001,)]


def _run_updates(kernels, update, p0, grads, copy):
    """Three steps of `update` from p0 with fresh state; the param (and the copy) after each."""
    p = p0.copy()
    states = [np.zeros_like(p0) for _ in range(3)]
    seen = []
    for step, g in enumerate(grads, start=1):
        assert UPDATES[update](kernels, p, g, states, step, **(
            {"bf16_copy": copy} if copy is not None else {})) is None
        seen.append((p.copy(), None if copy is None else copy.copy()))
    return seen, states


@pytest.mark.parametrize("shape", UPDATE_SHAPES, ids=str)
@pytest.mark.parametrize("update", sorted(UPDATES))
def test_updates_write_the_rounded_param_into_bf16_copy(rng, update, shape):
    p0 = rng.standard_normal(shape).astype(F32)
    grads = [rng.standard_normal(shape).astype(F32) for _ in range(3)]
    params = {}
    for kernels in (C, P):
        plain, plain_states = _run_updates(kernels, update, p0, grads, None)
        copy = np.full(shape, np.nan, F32)
        with_copy, states = _run_updates(kernels, update, p0, grads, copy)
        for (p, _), (q, c) in zip(plain, with_copy):
            np.testing.assert_array_equal(q, p)  # the update itself is unchanged
            np.testing.assert_array_equal(c, kernels.round_bfloat16(q))
        for s, t in zip(states, plain_states):
            np.testing.assert_array_equal(s, t)
        assert not np.array_equal(with_copy[-1][0], with_copy[-1][1])  # a real rounding
        params[kernels.name] = with_copy[-1][0]
    # The backends' updates agree to float32 tolerance (test_optimizers.py compares them).
    assert_close(params["cython"], params["numpy"], scale=float(np.abs(p0).max()) + 1.0)


def _bad_copies(shape):
    base = np.zeros(2 * int(np.prod(shape)), F32)
    read_only = np.zeros(shape, F32)
    read_only.flags.writeable = False
    return {
        "float64": (np.zeros(shape), TypeError),
        "float16": (np.zeros(shape, np.float16), TypeError),
        "list": (np.zeros(shape, F32).tolist(), TypeError),
        "shape": (np.zeros((shape[0] + 1,), F32), ValueError),
        "non_contiguous": (base[::2], ValueError),
        "read_only": (read_only, ValueError),
    }


@pytest.mark.parametrize("case", ["float64", "float16", "list", "shape", "non_contiguous",
                                  "read_only"])
@pytest.mark.parametrize("update", ["sgd_momentum", "adagrad", "rmsprop_centered_momentum",
                                    "adam_amsgrad"])
def test_bad_bf16_copies_are_refused_alike_and_nothing_is_written(update, case):
    shape = (6,)
    for kernels in (C, P):
        copy, error = _bad_copies(shape)[case]
        p = np.ones(shape, F32)
        states = [np.zeros(shape, F32) for _ in range(3)]
        with pytest.raises(error, match="bf16_copy"):
            UPDATES[update](kernels, p, np.ones(shape, F32), states, 1, bf16_copy=copy)
        np.testing.assert_array_equal(p, 1)
        assert not any(s.any() for s in states)


@pytest.mark.parametrize("update", sorted(UPDATES))
def test_bf16_copy_refuses_float64_params_and_overlaps(update):
    shape = (8,)
    for kernels in (C, P):
        p = np.ones(shape)
        with pytest.raises(ValueError, match="bf16_copy needs a float32 param"):
            UPDATES[update](kernels, p, np.ones(shape), [np.zeros(shape) for _ in range(3)], 1,
                            bf16_copy=np.zeros(shape, F32))
        np.testing.assert_array_equal(p, 1)
        # sharing memory with any array the same loop reads or writes
        big = np.ones(3 * shape[0], F32)
        p, g = big[:8], np.ones(shape, F32)
        states = [np.zeros(shape, F32) for _ in range(3)]
        uses_state = update not in ("sgd", "sgd_weight_decay")  # (no momentum: no buffer)
        for overlapping in (big[4:12], p, g) + ((states[0],) if uses_state else ()):
            with pytest.raises(ValueError, match="bf16_copy must not overlap"):
                UPDATES[update](kernels, p, g, states, 1, bf16_copy=overlapping)
        np.testing.assert_array_equal(p, 1)
        # disjoint views of one array are fine
        UPDATES[update](kernels, p, g, states, 1, bf16_copy=big[8:16])
        np.testing.assert_array_equal(big[8:16], kernels.round_bfloat16(p))


def test_bf16_copy_is_checked_with_converted_gradients():
    """A gradient of another dtype or layout is converted as without bf16_copy (its copy
    cannot overlap), and the result is the same."""
    rng = np.random.default_rng(1)
    p0 = rng.standard_normal((5, 7)).astype(F32)
    g = rng.standard_normal((5, 7))
    for kernels in (C, P):
        p1, p2 = p0.copy(), p0.copy()
        c1, c2 = np.empty_like(p0), np.empty_like(p0)
        kernels.adam_update(p1, g, np.zeros_like(p0), np.zeros_like(p0), None, lr=0.1, step=1,
                            bf16_copy=c1)
        kernels.adam_update(p2, np.asfortranarray(g.astype(F32)), np.zeros_like(p0),
                            np.zeros_like(p0), None, lr=0.1, step=1, bf16_copy=c2)
        np.testing.assert_array_equal(p1, p2)
        np.testing.assert_array_equal(c1, c2)
        np.testing.assert_array_equal(c1, kernels.round_bfloat16(p1))
