"""A Sequential keeps its parameters (and their gradients) in one flat array each, and an optimizer
updates such a group in one kernel call: the same numbers and the same per-parameter state as one
update per parameter."""
import copy

import numpy as np
import pytest

import fastnn as fnn
from fastnn.layers import renewed
from fastnn.optim import _FlatGroup

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
    data, grad = model._flat
    storage = params[0]._place.storage
    assert storage.data is data and storage.grad is grad
    assert data.ndim == 1 and data.size == sum(p.size for p in params)
    offset = 0
    for p in params:  # each Parameter records its place, and its arrays are that place's views
        place = p._place
        assert place.storage is storage and (place.start, place.stop) == (offset, offset + p.size)
        assert place.data is p._data and place.grad is p._grad
        offset += p.size
    for flat, attribute in ((data, "_data"), (grad, "_grad")):
        flat[...] = np.arange(flat.size)  # what the flat array holds, each Parameter shows
        offset = 0
        for p in params:
            np.testing.assert_array_equal(getattr(p, attribute).ravel(),
                                          np.arange(offset, offset + p.size))
            offset += p.size
    assert not np.shares_memory(data, grad)


def test_a_parameter_made_alone_has_no_flat_place(rng):
    """A standalone layer's parameters belong to no FlatStorage: updated one by one, even when
    their arrays happen to be parts of one array."""
    layer = fnn.Dense(5, 3)
    assert all(p._place is None for p in layer.parameters())
    flat = np.zeros(5 * 3 + 3)
    W = fnn.Parameter(flat[:15].reshape(5, 3), "W")
    b = fnn.Parameter(flat[15:], "b")
    assert W._place is None and not _FlatGroup.build([W, b], {})
    opt = fnn.optim.SGD([W, b], lr=0.5)
    W.grad, b.grad = np.ones((5, 3)), np.full(3, 2.0)
    opt.step()
    assert not opt._flat[id(opt.param_groups[0])]
    np.testing.assert_array_equal(flat, np.r_[np.full(15, -0.5), np.full(3, -1.0)])


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
    group = opt._flat[id(opt.param_groups[0])]
    second = fnn.Sequential(d1, d2, dtype="float64", seed=1)
    assert second.parameters() == first.parameters()
    assert second._flat[0] is first._flat[0]  # already laid out so: the same storage
    losses = []
    for _ in range(30):
        losses.append(fnn.losses.softmax_cross_entropy(second.forward(X, training=False), y)[0])
        step(second, opt, X, y)
    assert losses[-1] < 0.5 * losses[0]
    assert opt._flat[id(opt.param_groups[0])] is group  # not examined again
    # Layers mixed with others are laid out again; the optimizer follows the new views, still
    # one run (the first part of the new storage).
    third = fnn.Sequential(d1, d2, fnn.ReLU(), fnn.Dense(4, 4), dtype="float64", seed=2)
    before = d1.W.data.copy()
    step(third, opt, X, y)
    assert not np.array_equal(d1.W.data, before)
    group = opt._flat[id(opt.param_groups[0])]
    assert group and group.flat.data.size == sum(p.size for p in first.parameters())
    assert np.shares_memory(group.flat.data, third._flat[0])
    assert all(p._place.storage is third.parameters()[0]._place.storage
               for p in first.parameters())


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


def test_a_group_out_of_order_is_updated_one_parameter_at_a_time():
    params = make_model().parameters()
    assert _FlatGroup.build(params, {})
    assert not _FlatGroup.build(params[::-1], {})
    assert not _FlatGroup.build([params[1], params[0]] + params[2:], {})  # one pair swapped
    assert not _FlatGroup.build(params + params[:1], {})  # one twice


def test_a_subset_is_one_run_only_without_a_gap(rng):
    model = make_model()
    params = model.parameters()
    data, _ = model._flat
    part = params[2:6]  # BatchNorm's gamma, beta, Maxout's W, b: one after another
    group = _FlatGroup.build(part, {})
    start = sum(p.size for p in params[:2])
    data[...] = np.arange(data.size)
    np.testing.assert_array_equal(group.flat.data,
                                  np.arange(start, start + sum(p.size for p in part)))
    # Without BatchNorm's parameters the rest lie in one array but not one after another.
    gap = params[:2] + params[4:]
    assert not _FlatGroup.build(gap, {})
    model, reference = make_model(), make_model()
    opt = fnn.optim.SGD(model.parameters()[:2] + model.parameters()[4:], lr=0.1, momentum=0.9)
    ref_opt = fnn.optim.SGD((reference.parameters()[:2] + reference.parameters()[4:])[::-1],
                            lr=0.1, momentum=0.9)
    skipped = [p.data.copy() for p in model.parameters()[2:4]]
    for X, y in batches(rng):
        step(model, opt, X, y)
        step(reference, ref_opt, X, y)
    assert not opt._flat[id(opt.param_groups[0])]
    for p, old in zip(model.parameters()[2:4], skipped):
        np.testing.assert_array_equal(p.data, old)
    for p, q in zip(model.parameters(), reference.parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("frozen, one_run", [([0], True), ([0, 1, 3], True), ([3], False)])
def test_frozen_first_layers_leave_the_rest_one_run(frozen, one_run, rng):
    """Frozen parameters are left out of the group: the first layers frozen, the rest is one
    run; a frozen layer in the middle splits it, and the update goes parameter by parameter."""
    model, reference = make_model(), make_model()
    for m in (model, reference):
        for i in frozen:
            m.layers[i].freeze()
    opt = fnn.optim.Adam(model.parameters(), lr=1e-2)
    ref_opt = fnn.optim.Adam(reference.parameters()[::-1], lr=1e-2)
    before = [p.data.copy() for p in model.parameters()]
    for X, y in batches(rng):
        step(model, opt, X, y)
        step(reference, ref_opt, X, y)
    group = opt._flat[id(opt.param_groups[0])]
    assert bool(group) == one_run
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert group.params == trainable
    for p, q, old in zip(model.parameters(), reference.parameters(), before):
        if p.requires_grad:
            assert not np.array_equal(p.data, old)
            np.testing.assert_allclose(p.data, q.data, rtol=1e-13, atol=1e-15)
        else:
            np.testing.assert_array_equal(p.data, old)
            assert p not in opt.state


def test_a_parameter_renewed_in_another_dtype_is_no_longer_part_of_the_run():
    params = make_model().parameters()
    W = params[0]
    renewed(W, np.zeros(W.shape, np.float32), "W")
    assert W.replaced and W._place is not None  # its place is still recorded, but its array
    assert not _FlatGroup.build(params, {})     # is no longer that place's view
    assert _FlatGroup.build(params[1:], {})


def test_deep_copied_layers_are_laid_out_anew(rng):
    """A deep copy copies a parameter's views apart from the copied flat arrays: the copies must
    not be taken for a run of the copied storage, and a Sequential of them lays them out again."""
    layers = copy.deepcopy(make_model().layers)
    params = [p for layer in layers for p in layer.parameters()]
    assert params[0]._place.data is params[0]._data  # the copied record looks intact
    assert not _FlatGroup.build(params, {})
    copied, reference = fnn.Sequential(*layers, dtype="float64", seed=5), make_model()
    assert all(np.shares_memory(p.data, copied._flat[0]) for p in copied.parameters())
    opt, ref_opt = fnn.optim.Adam(copied.parameters(), lr=1e-2), \
        fnn.optim.Adam(reference.parameters(), lr=1e-2)
    for X, y in batches(rng):
        step(copied, opt, X, y)
        step(reference, ref_opt, X, y)
    assert all(opt._flat.values())
    for p, q in zip(copied.parameters(), reference.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


def test_lbfgs_follows_layers_laid_out_again(rng):
    d1, d2 = fnn.Dense(7, 16, activation="relu"), fnn.Dense(16, 4)
    first = fnn.Sequential(d1, d2, dtype="float64", seed=0)
    opt = fnn.optim.LBFGS(first.parameters(), max_iter=3)
    X, y = batches(rng, 1)[0]

    def closure_for(model):
        return lambda: model.forward_backward(X, y, "softmax_cross_entropy")[0]

    opt.step(closure_for(first))
    assert opt._layout and np.shares_memory(opt._layout.flat.data, first._flat[0])
    third = fnn.Sequential(d1, d2, fnn.ReLU(), fnn.Dense(4, 4), dtype="float64", seed=2)
    before = d1.W.data.copy()
    opt.step(closure_for(third))
    assert opt._layout and np.shares_memory(opt._layout.flat.data, third._flat[0])
    assert not np.array_equal(d1.W.data, before)
