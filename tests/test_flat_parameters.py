"""A Sequential keeps its parameters (and their gradients) in one flat array each, and an optimizer
updates such a group in one kernel call: the same numbers and the same per-parameter state as one
update per parameter."""
import numpy as np
import pytest

import fastnn as fnn

OPTIMIZERS = {
    "sgd": lambda ps: fnn.optim.SGD(ps, lr=0.05),
    "sgd_nesterov": lambda ps: fnn.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True,
                                             weight_decay=1e-3),
    "adagrad": lambda ps: fnn.optim.Adagrad(ps, lr=0.05, lr_decay=1e-3,
                                            initial_accumulator_value=0.1),
    "rmsprop_centered": lambda ps: fnn.optim.RMSprop(ps, lr=1e-3, momentum=0.5, centered=True),
    "adam_amsgrad": lambda ps: fnn.optim.Adam(ps, lr=1e-2, weight_decay=1e-3, amsgrad=True),
    "adamw": lambda ps: fnn.optim.AdamW(ps, lr=1e-2),
}


def make_model():
    return fnn.Sequential(fnn.Dense(7, 33), fnn.BatchNorm(33), fnn.ReLU(),
                          fnn.Maxout(33, 9, pieces=2), fnn.PReLU(9), fnn.Dense(9, 4),
                          dtype="float64", seed=5)


def batches(rng, n=4):
    return [(rng.standard_normal((11, 7)), rng.integers(0, 4, 11)) for _ in range(n)]


def step(model, opt, X, y):
    _, dscores = fnn.losses.softmax_cross_entropy(model.forward(X, training=True), y)
    model.zero_grad()
    model.backward(dscores)
    opt.step()


def test_parameters_are_views_of_one_flat_array_in_order():
    model = make_model()
    params = model.parameters()
    for attribute in ("data", "_grad"):
        arrays = [getattr(p, attribute) for p in params]
        base = arrays[0].base
        assert base.ndim == 1 and base.size == sum(p.size for p in params)
        offset = 0
        for a in arrays:
            assert a.base is base
            assert a.ctypes.data == base.ctypes.data + offset * base.itemsize
            offset += a.size
    assert params[0].data.base is not params[0]._grad.base


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_one_flat_update_equals_one_update_per_parameter(name, rng):
    flat, single = make_model(), make_model()
    flat_opt = OPTIMIZERS[name](flat.parameters())
    # Reversed, the parameters are no longer one after another: one kernel call each.
    single_params = single.parameters()
    single_opt = OPTIMIZERS[name](single_params[::-1])
    for X, y in batches(rng) * 2:
        step(flat, flat_opt, X, y)
        step(single, single_opt, X, y)
    assert flat_opt._flat and all(f for f in flat_opt._flat.values())
    assert not any(single_opt._flat.values())
    for p, q in zip(flat.parameters(), single_params):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-13, atol=1e-15)
        assert set(flat_opt.state[p]) == set(single_opt.state[q])
        for key, value in single_opt.state[q].items():
            np.testing.assert_allclose(flat_opt.state[p][key], value, rtol=1e-13, atol=1e-15,
                                       err_msg=key)


def test_per_parameter_state_entries_are_views_of_the_flat_state(rng):
    model = make_model()
    opt = fnn.optim.Adam(model.parameters(), lr=1e-2)
    X, y = batches(rng)[0]
    step(model, opt, X, y)
    p = model.parameters()[2]
    before = opt.state[p]["exp_avg"].copy()
    step(model, opt, X, y)
    assert opt.state[p]["step"] == 2
    assert not np.array_equal(opt.state[p]["exp_avg"], before)  # updated through the view


def test_state_dict_round_trip_continues_identically(rng):
    data = batches(rng, 6)
    straight = make_model()
    straight_opt = fnn.optim.Adam(straight.parameters(), lr=1e-2)
    for X, y in data:
        step(straight, straight_opt, X, y)

    first = make_model()
    first_opt = fnn.optim.Adam(first.parameters(), lr=1e-2)
    for X, y in data[:3]:
        step(first, first_opt, X, y)
    resumed = make_model()
    resumed.load_state_dict(first.state_dict())
    resumed_opt = fnn.optim.Adam(resumed.parameters(), lr=1e-2)
    resumed_opt.load_state_dict(first_opt.state_dict())
    for X, y in data[3:]:
        step(resumed, resumed_opt, X, y)
    assert all(f for f in resumed_opt._flat.values())
    for p, q in zip(resumed.parameters(), straight.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-13)
    assert resumed_opt.state_dict()["state"][0]["step"] == 6


def test_assigning_to_data_copies_into_the_flat_array(rng):
    """p.data = array changes the model's numbers in place: the optimizer keeps updating what
    the model reads (a new array used to leave the optimizer updating the old one)."""
    model, reference = make_model(), make_model()
    opt, ref_opt = fnn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), \
        fnn.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    data = batches(rng)
    step(model, opt, *data[0])
    step(reference, ref_opt, *data[0])
    W, W_ref = model.parameters()[0], reference.parameters()[0]
    view = W.data
    W.data = W.data * 0.5
    W_ref.data[...] *= 0.5
    assert W.data is view
    for X, y in data[1:]:
        step(model, opt, X, y)
        step(reference, ref_opt, X, y)
    assert all(opt._flat.values())
    for p, q in zip(model.parameters(), reference.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    with pytest.raises(ValueError, match="data must keep its shape"):
        W.data = np.zeros((2, 2))


def test_layers_put_into_a_second_sequential_keep_their_optimizer(rng):
    """Sequential(d1, d2) again (it re-initializes the layers) leaves an optimizer built on the
    first model updating the parameters the layers use."""
    d1, d2 = fnn.Dense(7, 16, activation="relu"), fnn.Dense(16, 4)
    first = fnn.Sequential(d1, d2, dtype="float64", seed=0)
    opt = fnn.optim.SGD(first.parameters(), lr=0.2)
    X, y = batches(rng, 1)[0]
    step(first, opt, X, y)
    second = fnn.Sequential(d1, d2, dtype="float64", seed=1)
    assert second.parameters() == first.parameters()
    losses = []
    for _ in range(30):
        losses.append(fnn.losses.softmax_cross_entropy(second.forward(X, training=False), y)[0])
        step(second, opt, X, y)
    assert losses[-1] < 0.5 * losses[0]
    # Layers mixed with others are laid out again; the optimizer follows the new views.
    third = fnn.Sequential(d1, d2, fnn.ReLU(), fnn.Dense(4, 4), dtype="float64", seed=2)
    before = d1.W.data.copy()
    step(third, opt, X, y)
    assert not np.array_equal(d1.W.data, before)


def test_an_optimizer_of_replaced_parameters_refuses_to_step(rng):
    """A layer re-initialized in another dtype holds new Parameters: an optimizer still holding
    the old ones raises instead of updating arrays no model reads."""
    d1, d2 = fnn.Dense(7, 16), fnn.Dense(16, 4)
    first = fnn.Sequential(d1, d2, dtype="float32", seed=0)
    opt = fnn.optim.Adam(first.parameters())
    second = fnn.Sequential(d1, d2, dtype="float64", seed=0)
    X, y = batches(rng, 1)[0]
    _, dscores = fnn.losses.softmax_cross_entropy(second.forward(X, training=True), y)
    second.backward(dscores)
    with pytest.raises(RuntimeError, match=r"Adam.step: parameters \['W', 'b', 'W', 'b'\] are no"):
        opt.step()
    fnn.optim.Adam(second.parameters()).step()


def test_a_parameter_without_a_fresh_gradient_is_updated_with_zeros(rng):
    """A cleared gradient may hold stale numbers until read; the flat update must not use them."""
    model, reference = make_model(), make_model()
    opt, ref_opt = fnn.optim.SGD(model.parameters(), lr=0.1), \
        fnn.optim.SGD(reference.parameters()[::-1], lr=0.1)
    X, y = batches(rng)[0]
    for m, o in ((model, opt), (reference, ref_opt)):
        step(m, o, X, y)
        m.zero_grad()
        m.layers[-1].backward(np.ones((11, 4)), need_dX=False)  # only the last Dense's gradient
        o.step()
    for p, q in zip(model.parameters(), reference.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


def test_a_changed_parameter_group_is_laid_out_again(rng):
    model = make_model()
    params = model.parameters()
    opt = fnn.optim.SGD(params, lr=0.1)
    X, y = batches(rng)[0]
    step(model, opt, X, y)
    opt.param_groups[0]["params"] = params[:2]  # only the first Dense's W and b
    before = [p.data.copy() for p in params]
    step(model, opt, X, y)
    assert not np.array_equal(params[0].data, before[0])
    for p, old in zip(params[2:], before[2:]):
        np.testing.assert_array_equal(p.data, old)


def test_the_layout_is_examined_once_not_every_step(rng, monkeypatch):
    from fastnn.optim import _FlatGroup
    calls = []
    build = _FlatGroup.build.__func__
    monkeypatch.setattr(_FlatGroup, "build",
                        classmethod(lambda cls, *a: calls.append(1) or build(cls, *a)))
    for params in (lambda m: m.parameters(), lambda m: m.parameters()[::-1]):  # flat, then not
        calls.clear()
        model = make_model()
        opt = fnn.optim.SGD(params(model), lr=0.1)
        for X, y in batches(rng):
            step(model, opt, X, y)
        assert len(calls) == 1
