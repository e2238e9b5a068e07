"""BatchNorm: the kernels against their twin and against torch.nn.BatchNorm1d, gradient checks,
numerical stability, the layer's API, and a full training run on both backends."""
import numpy as np
import pytest

import fastnn as fnn
from fastnn import _backend, _kernels
from fastnn.gradient_check import numerical_gradient, relative_error

from _support import RTOL, assert_close

C = _kernels.CYTHON
P = _kernels.NUMPY
DTYPES = (np.float32, np.float64)
# Odd widths and batches (a batch of one only in inference), plus shapes above the single-thread
# threshold. The kernels sum four rows at a time: batches of 2, 3, 17 and 1023 leave rows over.
SHAPES = [(1, 1), (1, 1000), (2, 1), (2, 7), (3, 33), (3, 1000), (17, 33), (64, 7), (100, 1000),
          (1023, 129)]
BIG_SHAPES = [(100, 1000), (1023, 129)]

compiled_only = pytest.mark.skipif(C is None, reason="the compiled backend is not built")


@pytest.fixture(params=[1, 2], ids=["threads1", "threads2"])
def threads(request):
    previous = fnn.get_num_threads()
    fnn.set_num_threads(request.param)
    yield request.param
    fnn.set_num_threads(previous)


def bn_inputs(rng, n, d, dtype, offset=0.0):
    """X (features with different means and scales), gamma, beta, running stats, dY."""
    X = (rng.standard_normal((n, d)) * rng.uniform(0.5, 3, d) + rng.uniform(-2, 2, d)
         + offset).astype(dtype)
    gamma = rng.uniform(0.5, 1.5, d).astype(dtype)
    beta = rng.standard_normal(d).astype(dtype)
    running_mean = rng.standard_normal(d).astype(dtype)
    running_var = rng.uniform(0.5, 2, d).astype(dtype)
    dY = rng.standard_normal((n, d)).astype(dtype)
    return X, gamma, beta, running_mean, running_var, dY


def forward(kernels, X, gamma, beta, running_mean, running_var, training, **kw):
    """One forward on copies of the running stats; returns (out, mean, inv_std, rm, rv)."""
    rm, rv = running_mean.copy(), running_var.copy()
    d = X.shape[1]
    mean, inv_std = np.empty(d, gamma.dtype), np.empty(d, gamma.dtype)
    out = kernels.batchnorm_forward(X, gamma, beta, rm, rv, training=training, momentum=0.1,
                                    eps=1e-5, mean=mean, inv_std=inv_std, **kw)
    return out, mean, inv_std, rm, rv


# ------------------------------------------------------------------------------------------------
# Kernels: compiled against twin


@compiled_only
@pytest.mark.backend_independent
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_forward_and_backward_match_twin(rng, shape, dtype, training, threads):
    X, gamma, beta, rm, rv, dY = bn_inputs(rng, *shape, dtype)
    if training and shape[0] == 1:
        for kernels in (C, P):
            with pytest.raises(ValueError, match="batch of 1"):
                forward(kernels, X, gamma, beta, rm, rv, training)
        return
    got = forward(C, X, gamma, beta, rm, rv, training)
    want = forward(P, X, gamma, beta, rm, rv, training)
    for g, w in zip(got, want):
        assert_close(g, w)
    if not training:  # running stats are left alone and used as they are
        np.testing.assert_array_equal(got[3], rm)
        np.testing.assert_array_equal(want[1], rm)
    _, mean, inv_std, _, _ = want
    dg0, db0 = rng.standard_normal(shape[1]).astype(dtype), rng.standard_normal(shape[1])
    for accumulate in (False, True):
        results = []
        for kernels in (C, P):
            dgamma, dbeta = dg0.copy(), db0.astype(dtype)
            results.append(kernels.batchnorm_backward(
                dY, X, gamma, mean, inv_std, training=training, dgamma=dgamma, dbeta=dbeta,
                accumulate=accumulate))
            assert results[-1][1] is dgamma and results[-1][2] is dbeta
        (dX_c, dg_c, db_c), (dX_p, dg_p, db_p) = results
        assert_close(dX_c, dX_p, scale=float(np.abs(dX_p).max() + np.abs(dY).max() * gamma.max()
                                             * inv_std.max()))
        sums = float(np.abs(dY).sum(axis=0).max()) + (2 if accumulate else 0) * 3
        assert_close(dg_c, dg_p, scale=sums * 4)
        assert_close(db_c, db_p, scale=sums)
    # dgamma/dbeta default to fresh arrays; no accumulation into them.
    (dX_c, dg_c, db_c), (dX_p, dg_p, db_p) = (
        k.batchnorm_backward(dY, X, gamma, mean, inv_std, training=training) for k in (C, P))
    assert_close(db_c, db_p, scale=float(np.abs(dY).sum(axis=0).max()))
    assert_close(db_p, dY.sum(axis=0, dtype=np.float64).astype(dtype),
                 scale=float(np.abs(dY).sum(axis=0).max()))


@compiled_only
@pytest.mark.backend_independent
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BIG_SHAPES, ids=str)
def test_thread_counts_agree(rng, shape, dtype):
    X, gamma, beta, rm, rv, dY = bn_inputs(rng, *shape, dtype)
    previous = fnn.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            fnn.set_num_threads(n)
            out, mean, inv_std, new_rm, new_rv = forward(C, X, gamma, beta, rm, rv, True)
            grads = C.batchnorm_backward(dY, X, gamma, mean, inv_std, training=True)
            results.append((out, mean, inv_std, new_rm, new_rv) + grads)
    finally:
        fnn.set_num_threads(previous)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert_close(b, a, scale=float(np.abs(a).max()) + 1.0)


@compiled_only
@pytest.mark.backend_independent
@pytest.mark.parametrize("dtype", DTYPES)
def test_in_place_out_and_dX(rng, dtype):
    X, gamma, beta, rm, rv, dY = bn_inputs(rng, 300, 400, dtype)
    for kernels in (C, P):
        want, mean, inv_std, _, _ = forward(kernels, X, gamma, beta, rm, rv, True)
        want_dX = kernels.batchnorm_backward(dY, X, gamma, mean, inv_std, training=True)[0]
        Xc = X.copy()
        got = forward(kernels, Xc, gamma, beta, rm, rv, True, out=Xc)[0]
        assert got is Xc
        assert_close(got, want)
        dYc = dY.copy()
        dX = kernels.batchnorm_backward(dYc, X, gamma, mean, inv_std, training=True, dX=dYc)[0]
        assert dX is dYc
        assert_close(dX, want_dX)


@compiled_only
@pytest.mark.backend_independent
@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_and_other_dtype_inputs(rng, dtype):
    X, gamma, beta, rm, rv, dY = bn_inputs(rng, 9, 14, dtype)
    Xi = rng.integers(-3, 4, (9, 14))
    for kernels in (C, P):
        want = forward(kernels, X, gamma, beta, rm, rv, True)
        for view in (np.asfortranarray(X), np.repeat(X, 2, axis=1)[:, ::2]):
            assert not view.flags.c_contiguous
            for g, w in zip(forward(kernels, view, gamma, beta, rm, rv, True), want):
                np.testing.assert_array_equal(g, w)
        _, mean, inv_std, _, _ = want
        want_grads = kernels.batchnorm_backward(dY, X, gamma, mean, inv_std, training=True)
        got_grads = kernels.batchnorm_backward(np.asfortranarray(dY), X[:, ::-1][:, ::-1],
                                               gamma, mean, inv_std, training=True)
        for g, w in zip(got_grads, want_grads):
            np.testing.assert_array_equal(g, w)
        # Integer X (and float64 vectors for a float32 kernel) are converted to gamma's dtype.
        out = forward(kernels, Xi, gamma, beta.astype(np.float64), rm, rv, True)[0]
        assert out.dtype == dtype
        assert_close(out, forward(kernels, Xi.astype(dtype), gamma, beta, rm, rv, True)[0])
    # And the backends agree on them.
    assert_close(forward(C, Xi, gamma, beta, rm, rv, True)[0],
                 forward(P, Xi, gamma, beta, rm, rv, True)[0])


def _outcome(call):
    try:
        call()
    except Exception as error:  # the point is to compare what each backend does
        return type(error), str(error)
    return None


@compiled_only
@pytest.mark.backend_independent
def test_bad_arguments_are_rejected_alike(rng):
    X, gamma, beta, rm, rv, dY = bn_inputs(rng, 3, 4, np.float64)
    mean, inv_std = np.zeros(4), np.ones(4)

    def fwd(k, X=X, gamma=gamma, beta=beta, rm=rm, rv=rv, training=True, **kw):
        kw = {"momentum": 0.1, "eps": 1e-5, **kw}
        return k.batchnorm_forward(X, gamma, beta, rm.copy(), rv.copy(), training=training, **kw)

    cases = [
        ("batch of one", lambda k: fwd(k, X=X[:1]), ValueError),
        ("int gamma", lambda k: fwd(k, gamma=np.ones(4, int)), TypeError),
        ("list gamma", lambda k: fwd(k, gamma=[1.0] * 4), TypeError),
        ("gamma shape", lambda k: fwd(k, gamma=np.ones(5)), ValueError),
        ("beta shape", lambda k: fwd(k, beta=np.ones(3)), ValueError),
        ("1-D X", lambda k: fwd(k, X=X[0]), ValueError),
        ("complex X", lambda k: fwd(k, X=X.astype(complex)), TypeError),
        ("running_mean dtype", lambda k: fwd(k, rm=rm.astype(np.float32)), TypeError),
        ("running_var shape", lambda k: fwd(k, rv=np.ones(5)), ValueError),
        ("running_var read-only", lambda k: k.batchnorm_forward(
            X, gamma, beta, rm.copy(), np.broadcast_to(rv, (4,)), training=True, momentum=0.1,
            eps=1e-5), ValueError),
        ("momentum > 1", lambda k: fwd(k, momentum=1.5), ValueError),
        ("eps = 0", lambda k: fwd(k, eps=0.0), ValueError),
        ("out dtype", lambda k: fwd(k, out=np.empty((3, 4), np.float32)), TypeError),
        ("mean shape", lambda k: fwd(k, mean=np.empty(3)), ValueError),
        ("inv_std dtype", lambda k: fwd(k, inv_std=np.empty(4, np.float32)), TypeError),
        ("backward dY shape", lambda k: k.batchnorm_backward(dY[:2], X, gamma, mean, inv_std,
                                                             training=True), ValueError),
        ("backward mean shape", lambda k: k.batchnorm_backward(dY, X, gamma, mean[:3], inv_std,
                                                               training=True), ValueError),
        ("backward dgamma dtype", lambda k: k.batchnorm_backward(
            dY, X, gamma, mean, inv_std, training=True, dgamma=np.empty(4, np.float32)),
         TypeError),
        ("backward dX shape", lambda k: k.batchnorm_backward(
            dY, X, gamma, mean, inv_std, training=True, dX=np.empty((3, 5))), ValueError),
    ]
    for name, call, error in cases:
        got_c, got_p = _outcome(lambda: call(C)), _outcome(lambda: call(P))
        assert got_c == got_p, name
        assert got_c is not None and got_c[0] is error, name
    # Inference mode takes a batch of one and read-only running statistics.
    for k in (C, P):
        frozen = np.broadcast_to(rv, (4,))
        assert k.batchnorm_forward(X[:1], gamma, beta, rm, frozen, training=False, momentum=0.1,
                                   eps=1e-5).shape == (1, 4)


# ------------------------------------------------------------------------------------------------
# Gradient checks (float64, each backend)


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_gradient_check(rng, training):
    X, gamma, beta, rm, rv, dY = bn_inputs(rng, 7, 5, np.float64)
    kernels = _backend.kernels

    def f_of(X, gamma, beta):
        return lambda _: kernels.batchnorm_forward(X, gamma, beta, rm.copy(), rv.copy(),
                                                   training=training, momentum=0.1, eps=1e-5)

    mean, inv_std = np.empty(5), np.empty(5)
    kernels.batchnorm_forward(X, gamma, beta, rm.copy(), rv.copy(), training=training,
                              momentum=0.1, eps=1e-5, mean=mean, inv_std=inv_std)
    dX, dgamma, dbeta = kernels.batchnorm_backward(dY, X, gamma, mean, inv_std,
                                                   training=training)
    for name, analytic, x in (("dX", dX, X), ("dgamma", dgamma, gamma), ("dbeta", dbeta, beta)):
        numeric = numerical_gradient(f_of(X, gamma, beta), x, dY)
        assert relative_error(analytic, numeric) < 1e-7, name
    if training:  # the batch statistics' dependence on X matters: dX sums to zero per column
        np.testing.assert_allclose(dX.sum(axis=0), 0, atol=1e-12)


def test_layer_gradient_check_in_a_model(rng):
    """dL/dX and dL/dgamma of Dense -> BatchNorm -> Dense in training mode, through the model."""
    X = rng.standard_normal((6, 4))
    y = np.array([0, 1, 2, 0, 1, 2])
    model = fnn.Sequential(fnn.Dense(4, 5), fnn.BatchNorm(5), fnn.Dense(5, 3, activation="tanh"),
                           dtype="float64", seed=0)
    bn = model.layers[1]
    bn.gamma.data[:] = rng.uniform(0.5, 1.5, 5)
    bn.beta.data[:] = rng.standard_normal(5)
    frozen = (bn.running_mean.copy(), bn.running_var.copy())

    def loss(_):
        bn.running_mean[:], bn.running_var[:] = frozen
        return fnn.losses.softmax_cross_entropy(model.forward(X, training=True), y)[0]

    model.zero_grad()
    model.backward(fnn.losses.softmax_cross_entropy(model.forward(X, training=True), y)[1])
    first_bias = model.layers[0].b
    for p in model.parameters():
        numeric = numerical_gradient(loss, p.data)
        if p is first_bias:  # a bias just before BatchNorm is cancelled by its mean
            assert np.abs(numeric).max() < 1e-8 and np.abs(p.grad).max() < 1e-12
        else:
            assert relative_error(p.grad, numeric) < 1e-7, p.name


# ------------------------------------------------------------------------------------------------
# Against torch.nn.BatchNorm1d (each backend)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_torch_batchnorm1d(rng, dtype):
    torch = pytest.importorskip("torch")
    n, d = 32, 13
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    layer = fnn.BatchNorm(d, eps=1e-3, momentum=0.2, dtype=dtype)
    ref = torch.nn.BatchNorm1d(d, eps=1e-3, momentum=0.2,
                               dtype=getattr(torch, np.dtype(dtype).name))
    gamma = rng.uniform(0.5, 1.5, d).astype(dtype)
    beta = rng.standard_normal(d).astype(dtype)
    layer.gamma.data[:] = gamma
    layer.beta.data[:] = beta
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(gamma))
        ref.bias.copy_(torch.from_numpy(beta))
    ref.train()
    for step in range(5):
        X = (rng.standard_normal((n, d)) * 2 + 3).astype(dtype)
        dY = rng.standard_normal((n, d)).astype(dtype)
        layer.zero_grad()
        ref.zero_grad()
        out = layer.forward(X, training=True)
        Xt = torch.from_numpy(X).requires_grad_(True)
        out_t = ref(Xt)
        out_t.backward(torch.from_numpy(dY))
        np.testing.assert_allclose(out, out_t.detach().numpy(), **tol)
        dX = layer.backward(dY)
        np.testing.assert_allclose(dX, Xt.grad.numpy(), **tol)
        np.testing.assert_allclose(layer.gamma.grad, ref.weight.grad.numpy(), **tol)
        np.testing.assert_allclose(layer.beta.grad, ref.bias.grad.numpy(), **tol)
        np.testing.assert_allclose(layer.running_mean, ref.running_mean.numpy(), **tol)
        np.testing.assert_allclose(layer.running_var, ref.running_var.numpy(), **tol)
    # Inference: the running statistics, and the gradient through them.
    ref.eval()
    X = (rng.standard_normal((7, d)) * 2 + 3).astype(dtype)
    dY = rng.standard_normal((7, d)).astype(dtype)
    layer.zero_grad()
    ref.zero_grad()
    Xt = torch.from_numpy(X).requires_grad_(True)
    out_t = ref(Xt)
    out_t.backward(torch.from_numpy(dY))
    np.testing.assert_allclose(layer.forward(X, training=False), out_t.detach().numpy(), **tol)
    np.testing.assert_allclose(layer.backward(dY), Xt.grad.numpy(), **tol)
    np.testing.assert_allclose(layer.gamma.grad, ref.weight.grad.numpy(), **tol)
    np.testing.assert_allclose(layer.beta.grad, ref.bias.grad.numpy(), **tol)


# ------------------------------------------------------------------------------------------------
# Numerical stability (each backend)


def test_large_means_in_float32_lose_no_precision(rng):
    """Features around 1e4 with std 1: E[x^2] - E[x]^2 in float32 would give a variance off by
    hundreds. The only error left is rounding the mean to float32 (half an ulp of 1e4, 4.9e-4),
    no more than the rounding the input itself carries."""
    n, d = 512, 64
    X = (1e4 + rng.standard_normal((n, d)) * rng.uniform(0.5, 2, d)).astype(np.float32)
    layer = fnn.BatchNorm(d)
    out = layer.forward(X, training=True)
    X64 = X.astype(np.float64)
    var = X64.var(axis=0)
    want = (X64 - X64.mean(axis=0)) / np.sqrt(var + 1e-5)
    assert np.abs(out - want).max() < 1e-3
    np.testing.assert_allclose(layer._inv_std, 1 / np.sqrt(var + 1e-5), rtol=1e-5)
    np.testing.assert_allclose(layer._mean, X64.mean(axis=0), rtol=1e-7)
    np.testing.assert_allclose(layer.running_var, 0.9 + 0.1 * X64.var(axis=0, ddof=1), rtol=1e-5)
    assert np.abs(out.mean(axis=0)).max() < 1e-3
    np.testing.assert_allclose(out.std(axis=0, dtype=np.float64), 1, atol=1e-4)


def test_constant_features_are_fine(rng):
    X = rng.standard_normal((10, 4))
    X[:, 1] = 3.0
    X[:, 3] = -1e4
    layer = fnn.BatchNorm(4, dtype="float64")
    layer.beta.data[:] = [0.1, 0.2, 0.3, 0.4]
    out = layer.forward(X, training=True)
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out[:, [1, 3]], np.broadcast_to([0.2, 0.4], (10, 2)))
    np.testing.assert_allclose(layer._inv_std[[1, 3]], 1 / np.sqrt(1e-5))
    np.testing.assert_array_equal(layer.running_var[[1, 3]], 0.9)
    dX = layer.backward(rng.standard_normal((10, 4)))
    assert np.all(np.isfinite(dX)) and np.all(np.isfinite(layer.gamma.grad))
    np.testing.assert_allclose(dX[:, [1, 3]].sum(axis=0), 0, atol=1e-9)


# ------------------------------------------------------------------------------------------------
# The layer


def test_layer_parameters_buffers_and_arguments():
    layer = fnn.BatchNorm(6)
    assert [p.name for p in layer.parameters()] == ["gamma", "beta"]
    np.testing.assert_array_equal(layer.gamma.data, np.ones(6, np.float32))
    np.testing.assert_array_equal(layer.beta.data, np.zeros(6, np.float32))
    np.testing.assert_array_equal(layer.running_mean, np.zeros(6))
    np.testing.assert_array_equal(layer.running_var, np.ones(6))
    assert set(layer.buffers()) == {"running_mean", "running_var"}
    assert layer.in_features == layer.out_features == 6
    assert (layer.eps, layer.momentum) == (1e-5, 0.1)
    assert repr(layer) == "BatchNorm(6)"
    with pytest.raises(ValueError, match="positive integer"):
        fnn.BatchNorm(0)
    with pytest.raises(ValueError, match="momentum"):
        fnn.BatchNorm(3, momentum=-0.1)
    with pytest.raises(ValueError, match="eps"):
        fnn.BatchNorm(3, eps=0)


def test_batch_of_one_in_training_is_an_error_and_fine_in_inference(rng):
    model = fnn.Sequential(fnn.Dense(4, 3), fnn.BatchNorm(3), seed=0)
    with pytest.raises(ValueError, match=r"layer 1 \(BatchNorm\(3\)\).*batch of 1"):
        model.forward(rng.standard_normal((1, 4)), training=True)
    assert model.forward(rng.standard_normal((1, 4)), training=False).shape == (1, 3)


def test_train_and_eval_modes(rng):
    model = fnn.Sequential(fnn.Dense(5, 4), fnn.BatchNorm(4), dtype="float64", seed=0)
    X = rng.standard_normal((20, 5)) * 3 + 1
    bn = model.layers[1]
    out = model.forward(X)  # a new model is in training mode
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=0), 1, rtol=1e-4)
    stats = bn.running_mean.copy(), bn.running_var.copy()
    assert not np.allclose(stats[0], 0)
    model.eval()
    out = model.forward(X)
    np.testing.assert_array_equal(bn.running_mean, stats[0])  # inference leaves them alone
    A = model.layers[0].forward(X)
    np.testing.assert_allclose(out, (A - stats[0]) / np.sqrt(stats[1] + 1e-5), rtol=1e-12)
    model.train()
    model.forward(X)
    assert not np.array_equal(bn.running_mean, stats[0])


def test_state_dict_holds_running_statistics(rng):
    def make(seed):
        return fnn.Sequential(fnn.Dense(5, 4), fnn.BatchNorm(4), fnn.Dense(4, 2), seed=seed)

    a, b = make(0), make(1)
    X = rng.standard_normal((16, 5))
    for _ in range(3):
        a.forward(X, training=True)
    state = a.state_dict()
    assert {"1.gamma", "1.beta", "1.running_mean", "1.running_var"} <= set(state)
    assert state["1.running_mean"] is not a.layers[1].running_mean  # a copy
    b.load_state_dict(state)
    np.testing.assert_array_equal(b.layers[1].running_var, a.layers[1].running_var)
    np.testing.assert_array_equal(b.forward(X, training=False), a.forward(X, training=False))
    del state["1.running_var"]
    with pytest.raises(ValueError, match="missing keys.*running_var"):
        b.load_state_dict(state)


def test_backward_accumulates_until_zero_grad(rng):
    layer = fnn.BatchNorm(3, dtype="float64")
    X, dY = rng.standard_normal((8, 3)), rng.standard_normal((8, 3))
    layer.forward(X, training=True)
    dX = layer.backward(dY).copy()
    once = layer.gamma.grad.copy(), layer.beta.grad.copy()
    np.testing.assert_array_equal(layer.backward(dY), dX)
    np.testing.assert_allclose(layer.gamma.grad, 2 * once[0], rtol=1e-12)
    np.testing.assert_allclose(layer.beta.grad, 2 * once[1], rtol=1e-12)
    layer.zero_grad()
    layer.backward(dY)
    np.testing.assert_allclose(layer.gamma.grad, once[0], rtol=1e-12)
    assert layer.backward(dY, need_dX=False) is None
    with pytest.raises(RuntimeError, match="before forward"):
        fnn.BatchNorm(3).backward(dY)


# ------------------------------------------------------------------------------------------------
# A full training run on both backends


@pytest.mark.backend_independent
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_run_gives_the_same_loss_curve_on_both_backends(dtype):
    """Dense -> BatchNorm -> ReLU -> Dropout -> Dense, 50 steps of SGD with momentum. There is no
    standalone ReLU layer yet, so the ReLU is a Dense(relu) layer: Dense -> BatchNorm ->
    Dense(relu) -> Dropout -> Dense."""
    if not fnn.compiled_available():
        pytest.skip("the compiled backend is not built")
    data = np.random.default_rng(5)
    centers = data.standard_normal((4, 20)) * 2
    y = data.integers(0, 4, 128)
    X = centers[y] + data.standard_normal((128, 20)) + 5.0  # off-centre: BatchNorm has work
    curves = {}
    for name in ("cython", "numpy"):
        with fnn.use_backend(name):
            model = fnn.Sequential(
                fnn.Dense(20, 64), fnn.BatchNorm(64), fnn.Dense(64, 64, activation="relu"),
                fnn.Dropout(0.3), fnn.Dense(64, 4), dtype=dtype, seed=42)
            opt = fnn.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
            curve = []
            for step in range(50):
                batch = slice((step % 4) * 32, (step % 4 + 1) * 32)
                loss, dscores = fnn.losses.softmax_cross_entropy(model.forward(X[batch]),
                                                                 y[batch])
                model.zero_grad()
                model.backward(dscores)
                opt.step()
                curve.append(loss)
            curves[name] = np.array(curve)
            eval_scores = model.forward(X, training=False)
            curves[name + " eval"] = eval_scores
    np.testing.assert_allclose(curves["cython"], curves["numpy"], rtol=1e-4)
    np.testing.assert_allclose(curves["cython eval"], curves["numpy eval"], rtol=1e-3, atol=1e-3)
    assert curves["cython"][-10:].mean() < 0.5 * curves["cython"][:5].mean()  # it learns
