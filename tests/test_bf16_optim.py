"""The built-in optimizers write a bfloat16 model's weight copies (the GEMM operands) in their
update's own pass (the kernels' bf16_copy): over the flat run of a parameter group when the copies
lie in the model's store laid out like its flat data, else parameter by parameter.

The reference is the same training where the update does not write the copies and the next
forward rounds them (an optimizer subclass that overrides _update: only the class that defines
_update may declare that it writes them). The two must give the same parameters bit for bit,
the copies must be exactly round_bfloat16 of the data after every step, and the forward after a
fused update must not round the weights again.
"""
import warnings

import numpy as np
import pytest

import fastnn as fnn
from fastnn import _backend, optim
from fastnn._kernels.bf16_numpy import round_bfloat16 as rnd


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "compute_dtype='bfloat16' runs by emulation")
        yield


OPTIMIZERS = {
    "sgd": (optim.SGD, dict(lr=0.05)),
    "sgd_momentum": (optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=1e-3)),
    "sgd_nesterov": (optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
    "adam": (optim.Adam, dict(lr=1e-2)),
    "adam_amsgrad": (optim.Adam, dict(lr=1e-2, amsgrad=True, weight_decay=1e-3)),
    "adamw": (optim.AdamW, dict(lr=1e-2)),
    "adagrad": (optim.Adagrad, dict(lr=0.05, lr_decay=1e-3, weight_decay=1e-3)),
    "rmsprop": (optim.RMSprop, dict(lr=1e-3)),
    "rmsprop_centered_momentum": (optim.RMSprop, dict(lr=1e-3, centered=True, momentum=0.9)),
}
# flat: one group, one flat run; frozen: the first layer frozen, the rest one run that starts
# inside the store; split: weights and biases in two groups, neither a run (per parameter).
LAYOUTS = ["flat", "frozen", "split"]


def make(compute="bfloat16", sizes=(13, 17, 11, 5), seed=0):
    acts = ["relu"] * (len(sizes) - 2) + ["identity"]
    layers = [fnn.Dense(a, b, activation=act) for a, b, act in zip(sizes, sizes[1:], acts)]
    return fnn.Sequential(*layers, seed=seed, compute_dtype=compute)


def params_for(model, layout):
    if layout == "frozen":
        model.layers[0].freeze()
    if layout == "split":
        return [{"params": [l.W for l in model.layers]}, {"params": [l.b for l in model.layers]}]
    return model.parameters()


def separate(cls):
    """cls with an _update of its own that calls cls's: it does not declare that it writes the
    bf16 copies, so they are left for the forward to round."""
    return type(f"Separate{cls.__name__}", (cls,),
                {"_update": lambda self, p, group, state: cls._update(self, p, group, state)})


def batch(rng, n=9, d=13, k=5):
    return rng.standard_normal((n, d)).astype(np.float32), rng.integers(0, k, n)


def one_step(model, opt, X, y):
    model.zero_grad()
    scores = model.forward(X, training=True)
    _, dscores = fnn.losses.softmax_cross_entropy(scores.copy(), y)
    model.backward(dscores)
    opt.step()


class Counting:
    """The backend's kernels, recording the arrays round_bfloat16 rounds and the bf16_copy
    each optimizer update gets."""

    UPDATES = ("sgd_update", "adagrad_update", "rmsprop_update", "adam_update")

    def __init__(self, kernels):
        self._kernels, self.rounded, self.copies = kernels, [], []

    def __getattr__(self, name):
        kernel = getattr(self._kernels, name)
        if name not in self.UPDATES:
            return kernel

        def update(*args, **kwargs):
            self.copies.append(kwargs.get("bf16_copy"))
            return kernel(*args, **kwargs)
        return update

    def round_bfloat16(self, X, **kwargs):
        self.rounded.append(X)
        return self._kernels.round_bfloat16(X, **kwargs)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_the_update_writes_the_copies_and_training_is_unchanged(rng, name, layout):
    cls, kwargs = OPTIMIZERS[name]
    X, y = batch(rng)
    fused, reference = make(), make()
    fused_opt = cls(params_for(fused, layout), **kwargs)
    reference_opt = separate(cls)(params_for(reference, layout), **kwargs)
    for _ in range(4):
        one_step(fused, fused_opt, X, y)
        one_step(reference, reference_opt, X, y)
        for p, q in zip(fused.parameters(), reference.parameters()):
            np.testing.assert_array_equal(p._data, q._data)
            assert p._bf16_fresh is p.requires_grad  # (frozen: never updated, never fresh)
            assert not q._bf16_fresh
            if p.requires_grad:
                np.testing.assert_array_equal(p._bf16, rnd(p._data))
    assert any(not np.array_equal(p._bf16, p._data) for p in fused.parameters())  # rounded
    groups = [fused_opt._flat[id(g)] for g in fused_opt.param_groups]
    if layout == "split":
        assert not any(groups)  # the per-parameter path
    else:
        (group,) = groups
        assert group and group.flat._bf16 is not None  # one call wrote them all
        assert np.shares_memory(group.flat._bf16, fused.layers[-1].b._bf16)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_forward_after_an_update_rounds_no_weight_again(rng, monkeypatch, layout):
    X, y = batch(rng)
    fused, reference = make(), make()
    fused_opt = optim.Adam(params_for(fused, layout), lr=1e-2)
    reference_opt = separate(optim.Adam)(params_for(reference, layout), lr=1e-2)
    counting = Counting(_backend.kernels)
    monkeypatch.setattr(_backend, "kernels", counting)

    def weights_rounded(model):
        """The parameters whose data round_bfloat16 rounded since last asked (not the
        activations, which the layers round too)."""
        params = [p for p in model.parameters() if any(a is p._data for a in counting.rounded)]
        del counting.rounded[:]
        return params

    frozen = [p for p in fused.parameters() if not p.requires_grad]
    for step in range(3):
        one_step(fused, fused_opt, X, y)
        # the first forward rounds every weight; later ones only those no update writes
        assert weights_rounded(fused) == (fused.parameters() if step == 0 else frozen)
        one_step(reference, reference_opt, X, y)
        assert weights_rounded(reference) == reference.parameters()  # (it rounds them all)
    np.testing.assert_array_equal(fused.forward(X, training=False),
                                  reference.forward(X, training=False))


def test_an_update_a_subclass_overrides_leaves_the_copies_to_the_forward(rng):
    """A custom _update that writes the data directly (not through .data): its class does not
    say it writes the copies, so they are marked stale and the forward rounds them."""

    class HalfStep(optim.SGD):
        def _update(self, p, group, state):
            p._data -= np.float32(0.5 * group["lr"]) * p.grad

    class Declared(optim.SGD):  # inherits SGD's _update, and its promise
        pass

    X, y = batch(rng)
    model, plain = make(), make()
    opt = HalfStep(model.parameters(), lr=0.1)
    assert not opt._writes_bf16 and Declared(plain.parameters())._writes_bf16
    expected = [p._data.copy() for p in model.parameters()]
    for _ in range(3):
        model.zero_grad()
        _, dscores = fnn.losses.softmax_cross_entropy(model.forward(X, training=True).copy(), y)
        model.backward(dscores)
        for p, e in zip(model.parameters(), expected):
            e -= np.float32(0.05) * p.grad
        opt.step()
        assert not any(p._bf16_fresh for p in model.parameters())
    for p, e in zip(model.parameters(), expected):
        np.testing.assert_array_equal(p._data, e)
    scores = model.forward(X, training=False)
    for p in model.parameters():
        np.testing.assert_array_equal(p._bf16, rnd(p._data))
    plain.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(scores, plain.forward(X, training=False))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_float32_models_get_no_copies(rng, monkeypatch, layout):
    X, y = batch(rng)
    model = make("float32")
    opt = optim.SGD(params_for(model, layout), lr=0.05, momentum=0.9)
    counting = Counting(_backend.kernels)
    monkeypatch.setattr(_backend, "kernels", counting)
    for _ in range(3):
        one_step(model, opt, X, y)
    assert counting.copies and all(c is None for c in counting.copies)
    assert not counting.rounded
    assert all(p._bf16 is None and not p._bf16_fresh for p in model.parameters())
    assert all(not g or g.flat._bf16 is None for g in opt._flat.values())


def test_copies_attached_after_the_first_steps_are_written(rng):
    """compute_dtype changed between steps gives the parameters new copies: the flat group is
    rebuilt around them (and forgets them when they go)."""
    X, y = batch(rng)
    model, reference = make("float32"), make("float32")
    opt = optim.Adam(model.parameters(), lr=1e-2)
    reference_opt = separate(optim.Adam)(reference.parameters(), lr=1e-2)
    for compute in ("float32", "bfloat16", "float32", "bfloat16"):
        model.compute_dtype = reference.compute_dtype = compute
        for _ in range(2):
            one_step(model, opt, X, y)
            one_step(reference, reference_opt, X, y)
        for p, q in zip(model.parameters(), reference.parameters()):
            np.testing.assert_array_equal(p._data, q._data)
            if compute == "bfloat16":
                assert p._bf16_fresh
                np.testing.assert_array_equal(p._bf16, rnd(p._data))
            else:
                assert p._bf16 is None


@pytest.mark.parametrize("tamper", ["swapped", "apart"])
def test_copies_not_laid_out_like_the_data_are_not_written_by_the_flat_update(rng, tamper):
    """The flat update writes the copies only when each is its parameter's part of one store
    laid out like the flat data: two same-shaped copies swapped, or one given an array apart,
    leave them all to the forward (which rounds each into its own copy)."""
    X, y = batch(rng, d=8)
    model, reference = make(sizes=(8, 8, 8)), make(sizes=(8, 8, 8))
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    reference_opt = optim.SGD(reference.parameters(), lr=0.05, momentum=0.9)
    one_step(model, opt, X, y)
    one_step(reference, reference_opt, X, y)
    W0, W1 = model.layers[0].W, model.layers[1].W
    if tamper == "swapped":
        W0._bf16, W1._bf16 = W1._bf16, W0._bf16
    else:
        W1._bf16 = np.empty_like(W1._data)
    W0._bf16_fresh = W1._bf16_fresh = False
    for _ in range(3):
        one_step(model, opt, X, y)
        one_step(reference, reference_opt, X, y)
        (group,) = opt._flat.values()
        assert group and group.flat._bf16 is None
        assert not any(p._bf16_fresh for p in model.parameters())
    for p, q in zip(model.parameters(), reference.parameters()):
        np.testing.assert_array_equal(p._data, q._data)
    model.forward(X, training=False)
    for p in model.parameters():
        np.testing.assert_array_equal(p._bf16, rnd(p._data))
