"""fnn.optim.LBFGS against scipy.optimize (the same minimum) and torch.optim.LBFGS (the same
iterates), full batch, in float64; frozen parameters, parameter layouts and argument checks."""
import numpy as np
import pytest

import fastnn as fnn


def problem(rng, n=60, d=5, classes=3):
    X = rng.standard_normal((n, d))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)
    return X, y


def closure_for(model, X, y, lam=1e-2):
    penalty = fnn.regularization.L2(lam)

    def closure():
        loss, _ = model.forward_backward(X, y, "softmax_cross_entropy")
        return loss + penalty(model)

    return closure


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_logistic_regression_reaches_scipys_minimum(line_search_fn, rng):
    from scipy.optimize import minimize

    X, y = problem(rng)
    model = fnn.Sequential(fnn.Dense(5, 3), dtype="float64", seed=0)
    closure = closure_for(model, X, y)
    params = model.parameters()
    start = np.concatenate([p.data.ravel() for p in params])

    def fun(theta):
        offset = 0
        for p in params:
            p.data = theta[offset:offset + p.size].reshape(p.shape)
            offset += p.size
        value = closure()
        return value, np.concatenate([p.grad.ravel() for p in params])

    reference = minimize(fun, start.copy(), jac=True, method="L-BFGS-B",
                         options=dict(gtol=1e-12, ftol=1e-15, maxiter=1000))
    initial, _ = fun(start)
    opt = fnn.optim.LBFGS(params, lr=1 if line_search_fn else 0.5, max_iter=500,
                          tolerance_grad=1e-10, tolerance_change=1e-14,
                          line_search_fn=line_search_fn)
    assert opt.step(closure) == initial  # step returns the closure's first loss
    final = closure()
    assert final == pytest.approx(reference.fun, rel=1e-9, abs=1e-12)
    theta = np.concatenate([p.data.ravel() for p in params])
    np.testing.assert_allclose(theta, reference.x, atol=1e-5)


def test_small_mlp_reaches_scipys_minimum(rng):
    from scipy.optimize import minimize

    X, y = problem(rng)
    model = fnn.Sequential(fnn.Dense(5, 8, activation="tanh"), fnn.Dense(8, 3),
                           dtype="float64", seed=1)
    closure = closure_for(model, X, y, lam=1e-1)  # strong L2: one minimum near the start
    params = model.parameters()
    start = np.concatenate([p.data.ravel() for p in params])

    def fun(theta):
        offset = 0
        for p in params:
            p.data = theta[offset:offset + p.size].reshape(p.shape)
            offset += p.size
        return closure(), np.concatenate([p.grad.ravel() for p in params])

    reference = minimize(fun, start.copy(), jac=True, method="L-BFGS-B",
                         options=dict(gtol=1e-10, ftol=1e-15, maxiter=2000))
    fun(start)
    opt = fnn.optim.LBFGS(params, max_iter=1000, tolerance_grad=1e-9, tolerance_change=1e-14,
                          line_search_fn="strong_wolfe")
    opt.step(closure)
    assert closure() == pytest.approx(reference.fun, rel=1e-7)


torch_cases = [(None, 1.0), ("strong_wolfe", 1.0), (None, 0.3)]


@pytest.mark.parametrize("line_search_fn, lr", torch_cases)
def test_iterates_match_torch(line_search_fn, lr, rng):
    torch = pytest.importorskip("torch")
    X, y = problem(rng)
    model = fnn.Sequential(fnn.Dense(5, 6, activation="tanh"), fnn.Dense(6, 3),
                           dtype="float64", seed=2)
    W1, b1, W2, b2 = [torch.tensor(p.data.copy(), requires_grad=True)
                      for p in model.parameters()]
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

    def torch_closure():
        topt.zero_grad()
        scores = torch.tanh(Xt @ W1 + b1) @ W2 + b2
        loss = torch.nn.functional.cross_entropy(scores, yt)
        loss.backward()
        return loss

    options = dict(lr=lr, max_iter=7, history_size=4, line_search_fn=line_search_fn)
    topt = torch.optim.LBFGS([W1, b1, W2, b2], **options)
    opt = fnn.optim.LBFGS(model.parameters(), **options)
    closure = closure_for(model, X, y, lam=0.0)
    for _ in range(3):  # several step() calls: the history carries over
        ours, theirs = opt.step(closure), topt.step(torch_closure).item()
        assert ours == pytest.approx(theirs, rel=1e-9)
        for p, t in zip(model.parameters(), (W1, b1, W2, b2)):
            np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-7, atol=1e-9)
    state = opt.state[model.parameters()[0]]
    tstate = topt.state[topt._params[0]]
    assert state["n_iter"] == tstate["n_iter"] and state["func_evals"] == tstate["func_evals"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_frozen_parameters_and_a_non_flat_parameter_list(dtype, rng):
    X, y = problem(rng)
    runs = []
    for order in ("flat", "reversed"):
        model = fnn.Sequential(fnn.Dense(5, 8, activation="relu"), fnn.Dense(8, 3), dtype=dtype,
                               seed=3)
        model.layers[0].b.requires_grad = False
        frozen = model.layers[0].b.data.copy()
        params = model.parameters()
        opt = fnn.optim.LBFGS(params if order == "flat" else params[::-1], max_iter=10,
                              line_search_fn="strong_wolfe")
        closure = closure_for(model, X, y)
        first = opt.step(closure)
        assert closure() < first
        np.testing.assert_array_equal(model.layers[0].b.data, frozen)
        runs.append([p.data.copy() for p in model.parameters()])
    for a, b in zip(*runs):  # the same minimization whatever the order of the list
        np.testing.assert_allclose(a, b, rtol=1e-4 if dtype == "float32" else 1e-10,
                                   atol=1e-5 if dtype == "float32" else 1e-12)


def test_stops_at_once_on_a_zero_gradient(rng):
    model = fnn.Sequential(fnn.Dense(3, 2), dtype="float64", seed=0)
    model.layers[0].W.data[...] = 0
    X = np.zeros((4, 3))
    y = np.array([0, 1, 0, 1])
    calls = []
    closure = closure_for(model, X, y, lam=0.0)

    def counting():
        calls.append(1)
        return closure()

    opt = fnn.optim.LBFGS(model.parameters())
    assert opt.step(counting) == pytest.approx(np.log(2))
    assert len(calls) == 1  # the gradient is zero at the start


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(lr=0), ValueError, "lr"), (dict(lr=-1), ValueError, "lr"),
    (dict(lr="1"), TypeError, "lr must be a number"),
    (dict(max_iter=0), ValueError, "max_iter must be a positive integer"),
    (dict(max_iter=2.5), ValueError, "max_iter"), (dict(max_eval=0), ValueError, "max_eval"),
    (dict(history_size=True), ValueError, "history_size"),
    (dict(tolerance_grad=-1), ValueError, "tolerance_grad"),
    (dict(tolerance_change=float("nan")), ValueError, "tolerance_change"),
    (dict(line_search_fn="wolfe"), ValueError, "line_search_fn must be None or 'strong_wolfe'"),
])
def test_bad_arguments_are_refused(kwargs, error, match):
    model = fnn.Sequential(fnn.Dense(3, 2), seed=0)
    with pytest.raises(error, match=match):
        fnn.optim.LBFGS(model.parameters(), **kwargs)


def test_step_needs_a_closure_returning_a_number_and_one_group():
    model = fnn.Sequential(fnn.Dense(3, 2), fnn.Dense(2, 2), seed=0)
    opt = fnn.optim.LBFGS(model.parameters())
    with pytest.raises(TypeError, match="needs a closure"):
        opt.step()
    with pytest.raises(TypeError, match="must return the loss as a number"):
        opt.step(lambda: "loss")
    params = model.parameters()
    with pytest.raises(ValueError, match="one parameter group"):
        fnn.optim.LBFGS([{"params": params[:2]}, {"params": params[2:]}])
