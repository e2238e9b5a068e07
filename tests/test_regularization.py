"""Weight penalties (L2, L1, ElasticNet) and the max-norm constraint: values by the notes'
formulas, gradients against centered differences of data loss + penalty, only weights touched,
accumulation with backward in either order, validation. Every test runs once per backend."""
import numpy as np
import pytest

import fastnn as fnn
from fastnn.gradient_check import numerical_gradient, relative_error
from fastnn.regularization import L1, L2, ElasticNet, MaxNorm, weights


def make_model(dtype="float64", seed=0):
    """Dense, BatchNorm, PReLU, Maxout and Dense: weights (3 W) and non-weights (2 b, gamma,
    beta, PReLU slopes, Maxout b)."""
    return fnn.Sequential(fnn.Dense(5, 6, activation="tanh"), fnn.BatchNorm(6), fnn.PReLU(6),
                          fnn.Maxout(6, 4, pieces=2), fnn.Dense(4, 3), dtype=dtype, seed=seed)


def data(rng, n=12):
    return rng.standard_normal((n, 5)), rng.integers(0, 3, n)


def loss_and_backward(model, X, y, zero=True):
    loss, dscores = fnn.losses.softmax_cross_entropy(model.forward(X, training=True), y)
    if zero:
        model.zero_grad()
    model.backward(dscores)
    return loss


def weight_arrays(model):
    return [p.data.astype(np.float64) for p in model.parameters() if p.is_weight]


PENALTIES = {
    "L2": (lambda: L2(0.3), lambda ws: sum(0.5 * 0.3 * np.sum(w ** 2) for w in ws),
           lambda w: 0.3 * w),
    "L1": (lambda: L1(0.2), lambda ws: sum(0.2 * np.sum(np.abs(w)) for w in ws),
           lambda w: 0.2 * np.sign(w)),
    "ElasticNet": (lambda: ElasticNet(l1=0.2, l2=0.3),
                   lambda ws: sum(0.2 * np.sum(np.abs(w)) + 0.15 * np.sum(w ** 2) for w in ws),
                   lambda w: 0.2 * np.sign(w) + 0.3 * w),
}


def test_weights_are_the_connection_weights_only():
    model = make_model()
    ws = weights(model)
    assert ws == [model.layers[0].W, model.layers[3].W, model.layers[4].W]
    assert weights(model.layers[3]) == [model.layers[3].W]
    assert weights(model.layers[1]) == [] and weights(model.layers[2]) == []
    assert weights(model.parameters()) == ws
    assert [p.name for p in model.parameters() if not p.is_weight] == ["b", "gamma", "beta", "a",
                                                                       "b", "b"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(PENALTIES))
def test_value_is_the_formula_over_weights_only(name, dtype):
    make, formula, _ = PENALTIES[name]
    model = make_model(dtype)
    for p in model.parameters():  # non-weights far from zero: they would dominate if counted
        if not p.is_weight:
            p.data[...] = 5.0
    want = formula(weight_arrays(model))
    penalty = make()
    value = penalty.value(model)
    assert isinstance(value, float)
    rtol = 1e-12 if dtype == "float64" else 1e-6
    assert value == pytest.approx(want, rel=rtol)
    assert penalty.value(model.parameters()) == value
    assert penalty.value(model.layers[3]) == pytest.approx(formula([weight_arrays(model)[1]]),
                                                          rel=rtol)
    model.zero_grad()
    assert penalty(model) == pytest.approx(want, rel=rtol)  # __call__ returns the value too


def test_known_values():
    layer = fnn.Dense(2, 2, dtype="float64")
    layer.W.data[...] = [[1.0, -2.0], [3.0, 0.0]]
    layer.b.data[...] = [100.0, -100.0]
    assert L2(0.1).value(layer) == pytest.approx(0.5 * 0.1 * 14)
    assert L1(0.1).value(layer) == pytest.approx(0.1 * 6)
    assert ElasticNet(l1=0.1, l2=0.1).value(layer) == pytest.approx(0.7 + 0.6)
    assert ElasticNet().value(layer) == 0.0
    layer.zero_grad()
    L1(0.5)(layer)  # sign(0) = 0: a zero weight gets no L1 gradient
    np.testing.assert_array_equal(layer.W.grad, [[0.5, -0.5], [0.5, 0.0]])
    np.testing.assert_array_equal(layer.b.grad, [0.0, 0.0])


@pytest.mark.parametrize("name", sorted(PENALTIES))
def test_gradient_matches_centered_differences_of_loss_plus_penalty(rng, name):
    make, _, _ = PENALTIES[name]
    model = make_model()
    X, y = data(rng)
    penalty = make()
    for w in weights(model):  # keep |w| away from L1's kink at 0
        assert np.min(np.abs(w.data)) > 1e-4
    loss_and_backward(model, X, y)
    penalty(model)
    analytic = [p.grad.copy() for p in model.parameters()]

    def objective(_):
        loss, _ = fnn.losses.softmax_cross_entropy(model.forward(X, training=True), y)
        return loss + penalty.value(model)

    for p, a in zip(model.parameters(), analytic):
        numeric = numerical_gradient(objective, p.data)
        assert relative_error(a, numeric) < 1e-7, f"{p.name}: {relative_error(a, numeric)}"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(PENALTIES))
def test_only_weight_gradients_change(rng, name, dtype):
    make, _, grad_formula = PENALTIES[name]
    model = make_model(dtype)
    X, y = data(rng)
    loss_and_backward(model, X, y)
    before = [p.grad.copy() for p in model.parameters()]
    loss_before = fnn.losses.softmax_cross_entropy(model.forward(X, training=False), y)[0]
    make()(model)
    for p, g in zip(model.parameters(), before):
        assert p.grad.dtype == np.dtype(dtype)
        if p.is_weight:
            want = g.astype(np.float64) + grad_formula(p.data.astype(np.float64))
            tol = 1e-12 if dtype == "float64" else 1e-6
            np.testing.assert_allclose(p.grad, want, rtol=tol, atol=tol)
            assert not np.array_equal(p.grad, g)
        else:  # biases, gamma, beta, PReLU slopes, Maxout biases: bitwise untouched
            np.testing.assert_array_equal(p.grad, g, err_msg=p.name)
    # the penalty does not change the model or its data loss
    assert fnn.losses.softmax_cross_entropy(model.forward(X, training=False), y)[0] == loss_before


@pytest.mark.parametrize("name", sorted(PENALTIES))
def test_penalty_is_reported_separately_from_the_data_loss(rng, name):
    make, formula, _ = PENALTIES[name]
    model = make_model()
    X, y = data(rng)
    loss = loss_and_backward(model, X, y)
    unregularized = make_model()  # the same seed: the same parameters
    plain_loss = loss_and_backward(unregularized, X, y)
    assert loss == plain_loss  # the data loss knows nothing of the penalty
    reg = make()(model)
    assert reg == pytest.approx(formula(weight_arrays(model)), rel=1e-12)
    assert reg > 0 and loss > 0
    # the objective's gradient is the data gradient plus the penalty gradient
    for p, q in zip(model.parameters(), unregularized.parameters()):
        if not p.is_weight:
            np.testing.assert_array_equal(p.grad, q.grad)


@pytest.mark.parametrize("name", sorted(PENALTIES))
def test_penalty_before_backward_accumulates_both(rng, name):
    """zero_grad(), penalty, backward(): backward must add to the penalty's gradient, not
    overwrite it, and the result equals zero_grad(), backward(), penalty."""
    make, _, _ = PENALTIES[name]
    X, y = data(rng)
    after, first = make_model(), make_model()
    loss_and_backward(after, X, y)
    make()(after)
    first.zero_grad()
    make()(first)
    loss_and_backward(first, X, y, zero=False)
    data_only = make_model()
    loss_and_backward(data_only, X, y)
    for p, q, d in zip(first.parameters(), after.parameters(), data_only.parameters()):
        np.testing.assert_allclose(p.grad, q.grad, rtol=1e-13, atol=1e-15, err_msg=p.name)
        if p.is_weight:
            assert not np.allclose(p.grad, d.grad)  # the penalty is still in there
        else:
            np.testing.assert_array_equal(p.grad, d.grad)


def test_penalty_before_backward_on_a_single_dense_layer(rng):
    # the smallest case: one Dense, float32, both orders, exact expectations
    layer = fnn.Dense(3, 2, dtype="float32", seed=1)
    X = rng.standard_normal((4, 3)).astype(np.float32)
    dA = rng.standard_normal((4, 2)).astype(np.float32)
    layer(X)
    layer.zero_grad()
    layer.backward(dA)
    data_grad = layer.W.grad.copy(), layer.b.grad.copy()
    layer.zero_grad()
    L2(0.5)(layer)
    assert not np.any(layer.b.grad)
    layer.backward(dA)
    np.testing.assert_allclose(layer.W.grad, data_grad[0] + np.float32(0.5) * layer.W.data,
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(layer.b.grad, data_grad[1])


def test_zero_strength_changes_nothing(rng):
    model = make_model()
    X, y = data(rng)
    loss_and_backward(model, X, y)
    before = [p.grad.copy() for p in model.parameters()]
    for penalty in (L2(0), L1(0.0), ElasticNet()):
        assert penalty(model) == 0.0
    for p, g in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.grad, g)


@pytest.mark.parametrize("bad", [-0.1, -1, float("nan"), float("inf"), "0.1", None, True])
def test_invalid_strengths_are_rejected(bad):
    for make in (L2, L1, lambda v: ElasticNet(l1=v), lambda v: ElasticNet(l2=v),
                 lambda v: ElasticNet(l1=0.1, l2=v)):
        with pytest.raises((ValueError, TypeError), match="strength"):
            make(bad)


def test_valid_strengths_are_kept_as_floats():
    assert L2(1).l2 == 1.0 and isinstance(L2(1).l2, float)
    assert L1(np.float32(0.5)).l1 == 0.5
    assert ElasticNet(l1=0.1, l2=0.2).l1 == 0.1 and ElasticNet(l1=0.1, l2=0.2).l2 == 0.2
    assert repr(L2(0.001)) == "L2(0.001)" and repr(L1(2)) == "L1(2)"


def test_numpy_integer_strengths_are_accepted():
    assert L2(np.int64(1)).l2 == 1.0
    assert MaxNorm(np.int64(3)).c == 3.0


# ------------------------------------------------------------------------------------------------
# Max-norm


def column_norms(W):
    W = W.astype(np.float64)
    return np.sqrt((W * W).sum(axis=0))


def long_model(dtype, seed=0):
    """A model whose weight columns have norms on both sides of 1.5."""
    model = fnn.Sequential(fnn.Dense(6, 7, init=0.8), fnn.BatchNorm(7), fnn.PReLU(7),
                           fnn.Maxout(7, 3, pieces=3, init=0.6), fnn.Dense(3, 2, init=0.9),
                           dtype=dtype, seed=seed)
    for p in model.parameters():
        if p.is_weight:  # column norms from about a fifth to four times their initial size
            p.data *= np.geomspace(0.2, 4.0, p.shape[1]).astype(p.dtype)
        else:
            p.data[...] = 4.0  # large non-weights: must not be clipped
    return model


@pytest.mark.parametrize("c", [1.5, 3])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_max_norm_clips_long_columns_and_leaves_the_rest(dtype, c):
    model = long_model(dtype)
    before = [p.data.copy() for p in model.parameters()]
    MaxNorm(c)(model)
    eps = np.finfo(dtype).eps
    clipped_somewhere = kept_somewhere = False
    for p, old in zip(model.parameters(), before):
        if not p.is_weight:
            np.testing.assert_array_equal(p.data, old, err_msg=p.name)
            continue
        old_norms, new_norms = column_norms(old), column_norms(p.data)
        assert np.all(new_norms <= c * (1 + 4 * eps))  # within rounding of c
        short = old_norms <= c
        np.testing.assert_array_equal(p.data[:, short], old[:, short])  # bitwise unchanged
        long = ~short
        # long columns: scaled to norm c along their own direction
        np.testing.assert_allclose(new_norms[long], c, rtol=4 * eps)
        np.testing.assert_allclose(p.data[:, long], old[:, long] * (c / old_norms[long]),
                                   rtol=4 * eps, atol=4 * eps * c)
        clipped_somewhere |= bool(long.any())
        kept_somewhere |= bool(short.any())
    assert clipped_somewhere and kept_somewhere  # the data exercise both branches


def test_max_norm_bound_holds_exactly():
    for dtype in ("float64", "float32"):
        for seed in range(10):
            model = fnn.Sequential(fnn.Dense(33, 50, init=3.0), dtype=dtype, seed=seed)
            MaxNorm(1.0)(model)
            assert np.all(column_norms(model.layers[0].W.data) <= 1.0)


def test_max_norm_is_idempotent_and_accepts_layers_and_lists(rng):
    model = long_model("float64")
    MaxNorm(1.5)(model.layers[0])  # one layer
    norms0 = column_norms(model.layers[0].W.data)
    assert np.all(norms0 <= 1.5 * (1 + 1e-15))
    assert np.any(column_norms(model.layers[4].W.data) > 1.5)  # the other layers untouched
    MaxNorm(1.5)(model.parameters())  # a parameter list
    assert np.all(column_norms(model.layers[4].W.data) <= 1.5 * (1 + 1e-15))
    snapshot = [p.data.copy() for p in model.parameters()]
    MaxNorm(1.5)(model)  # applying again: norms stay (up to the last rounding)
    for p, s in zip(model.parameters(), snapshot):
        np.testing.assert_allclose(p.data, s, rtol=1e-15, atol=0)


def test_max_norm_in_a_training_loop_keeps_the_bound(rng):
    model = fnn.Sequential(fnn.Dense(5, 16, activation="relu"), fnn.Dense(16, 3), seed=0)
    X, y = data(rng, 64)
    opt = fnn.optim.SGD(model.parameters(), lr=2.0)
    constraint = MaxNorm(0.5)
    for _ in range(5):
        loss_and_backward(model, X, y)
        opt.step()
        constraint(model)
        for w in weights(model):
            assert np.all(column_norms(w.data) <= 0.5 * (1 + 1e-6))
    assert np.any(model.layers[0].b.data != 0)  # the biases did train (and were not clipped)


@pytest.mark.parametrize("bad", [0, 0.0, -1.0, float("inf"), float("nan"), "1", None])
def test_invalid_max_norm_is_rejected(bad):
    with pytest.raises((ValueError, TypeError), match="c must"):
        MaxNorm(bad)


def test_valid_max_norm():
    assert MaxNorm(3).c == 3.0 and MaxNorm(np.float32(0.5)).c == 0.5
    assert repr(MaxNorm(2.0)) == "MaxNorm(2)"
