"""SGD through the optimizer class: formulas, validation, parameter groups, state."""
import numpy as np
import pytest

import fastnn as fnn
from fastnn.layers import Parameter


def param(values, grad):
    p = Parameter(np.array(values, dtype=np.float64), "w")
    p.grad[...] = grad
    return p


def reference_sgd(w, grads, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    """torch.optim.SGD's documented update, written out in NumPy."""
    w = np.array(w, dtype=np.float64)
    buf = None
    for g in grads:
        g = g + weight_decay * w
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        w = w - lr * g
    return w


@pytest.mark.parametrize("config", [
    dict(lr=0.1),
    dict(lr=0.1, weight_decay=0.01),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3),
    dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
])
def test_sgd_matches_the_documented_formulas(config, rng):
    w0 = rng.standard_normal(7)
    grads = [rng.standard_normal(7) for _ in range(5)]
    p = param(w0, 0)
    opt = fnn.optim.SGD([p], **config)
    for g in grads:
        p.grad[...] = g
        opt.step()
    np.testing.assert_allclose(p.data, reference_sgd(w0, grads, **config), rtol=1e-12)


def test_sgd_matches_torch(rng):
    torch = pytest.importorskip("torch")
    w0 = rng.standard_normal((5, 3)).astype(np.float32)
    tw = torch.tensor(w0.copy(), requires_grad=True)
    topt = torch.optim.SGD([tw], lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)
    p = Parameter(w0.copy(), "W")
    opt = fnn.optim.SGD([p], lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)
    for _ in range(20):
        g = rng.standard_normal((5, 3)).astype(np.float32)
        tw.grad = torch.tensor(g)
        topt.step()
        p.grad[...] = g
        opt.step()
    np.testing.assert_allclose(p.data, tw.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_sgd_validation():
    p = param([1.0], 0)
    with pytest.raises(ValueError, match="lr"):
        fnn.optim.SGD([p], lr=-1)
    with pytest.raises(ValueError, match="momentum"):
        fnn.optim.SGD([p], lr=0.1, momentum=-0.5)
    with pytest.raises(ValueError, match="Nesterov"):
        fnn.optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="Nesterov"):
        fnn.optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)
    with pytest.raises(ValueError, match="empty"):
        fnn.optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="Parameters"):
        fnn.optim.SGD([np.zeros(3)], lr=0.1)


def test_parameter_groups_override_defaults():
    a, b = param([1.0], 1.0), param([1.0], 1.0)
    opt = fnn.optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    opt.step()
    np.testing.assert_allclose([a.data[0], b.data[0]], [0.9, 0.5])


def test_zero_grad_and_closure():
    p = param([1.0, 2.0], [3.0, 4.0])
    opt = fnn.optim.SGD([p], lr=0.1)
    assert opt.step(lambda: 42.0) == 42.0
    opt.zero_grad()
    assert np.all(p.grad == 0)


def test_state_dict_resumes_identically(rng):
    grads = [rng.standard_normal(4) for _ in range(6)]
    a = param(rng.standard_normal(4), 0)
    opt_a = fnn.optim.SGD([a], lr=0.1, momentum=0.9)
    for g in grads[:3]:
        a.grad[...] = g
        opt_a.step()
    saved_w, saved_state = a.data.copy(), opt_a.state_dict()
    b = param(saved_w, 0)
    opt_b = fnn.optim.SGD([b], lr=0.7, momentum=0.9)
    opt_b.load_state_dict(saved_state)
    assert opt_b.param_groups[0]["lr"] == 0.1
    for g in grads[3:]:
        a.grad[...] = g
        b.grad[...] = g
        opt_a.step()
        opt_b.step()
    np.testing.assert_array_equal(a.data, b.data)
