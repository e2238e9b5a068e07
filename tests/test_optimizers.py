"""The optimizers' update rules: SGD, Adagrad, RMSprop, Adam and AdamW against their documented
formulas and torch.optim, the compiled update kernels against their NumPy twins, hyperparameter
validation, parameter groups, state_dict round trips, and the kernels' checks on optimizer state
buffers. (How a Sequential's flat parameter arrays are handed to an optimizer and updated in one
call is in test_flat_parameters.py.)

Tests that call both kernel sets themselves are marked `backend_independent`; the others use the
public classes and run once per backend (conftest). Tolerances: float32 ~1e-5 and float64 ~1e-12
relative to the magnitude of the values compared.
"""
import inspect
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import fastnn
import fastnn as fnn
from fastnn import _kernels
from fastnn.layers import Parameter

from _support import RTOL, assert_close

C = _kernels.CYTHON
P = _kernels.NUMPY

DTYPES = (np.float32, np.float64)
needs_compiled = pytest.mark.skipif(C is None, reason="the compiled backend is not built")

# name -> (optimizer class name, hyperparameters); the same keywords work for torch.optim.
VARIANTS = {
    "adagrad": ("Adagrad", dict()),
    "adagrad_all_options": ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.02,
                                            initial_accumulator_value=0.1, eps=1e-6)),
    "rmsprop": ("RMSprop", dict()),
    "rmsprop_momentum": ("RMSprop", dict(momentum=0.9)),
    "rmsprop_centered": ("RMSprop", dict(centered=True, alpha=0.9)),
    "rmsprop_centered_momentum": ("RMSprop", dict(lr=0.005, centered=True, momentum=0.8,
                                                  alpha=0.95, eps=1e-6)),
    "rmsprop_weight_decay": ("RMSprop", dict(weight_decay=0.05)),
    "adam": ("Adam", dict()),
    "adam_weight_decay": ("Adam", dict(lr=0.01, weight_decay=0.05)),
    "adam_amsgrad": ("Adam", dict(lr=0.01, betas=(0.8, 0.99), amsgrad=True)),
    "adamw": ("AdamW", dict()),
    "adamw_amsgrad": ("AdamW", dict(lr=0.01, betas=(0.9, 0.95), weight_decay=0.1, amsgrad=True,
                                     eps=1e-6)),
}
CLASSES = ("SGD", "Adagrad", "RMSprop", "Adam", "AdamW")


def gradients(rng, shape, dtype, steps=20):
    """Gradients with a non-zero mean (so centering matters) whose size falls after step 5 (so
    that exp_avg_sq decays below its running maximum and amsgrad matters)."""
    return [((0.3 + rng.standard_normal(shape)) * (3.0 if t < 5 else 0.5)).astype(dtype)
            for t in range(steps)]


# ------------------------------------------------------------------------------------------------
# SGD: the documented formulas, torch.optim.SGD, validation, groups, closure, state


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


def test_sgd_parameter_groups_override_defaults():
    a, b = param([1.0], 1.0), param([1.0], 1.0)
    opt = fnn.optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    opt.step()
    np.testing.assert_allclose([a.data[0], b.data[0]], [0.9, 0.5])


def test_sgd_zero_grad_and_closure():
    p = param([1.0, 2.0], [3.0, 4.0])
    opt = fnn.optim.SGD([p], lr=0.1)
    assert opt.step(lambda: 42.0) == 42.0
    opt.zero_grad()
    assert np.all(p.grad == 0)


def test_sgd_state_dict_resumes_identically(rng):
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


# ------------------------------------------------------------------------------------------------
# The classes against torch.optim


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_matches_torch_over_20_steps(variant, dtype):
    torch = pytest.importorskip("torch")
    name, options = VARIANTS[variant]
    rng = np.random.default_rng(7)
    shape = (33, 7)
    w0 = rng.standard_normal(shape).astype(dtype)
    tw = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    topt = getattr(torch.optim, name)([tw], **options)
    p = Parameter(w0.copy(), "W")
    opt = getattr(fnn.optim, name)([p], **options)
    rtol = RTOL[np.dtype(dtype)]
    for step, g in enumerate(gradients(rng, shape, dtype), start=1):
        tw.grad = torch.from_numpy(g.copy())
        topt.step()
        p.grad[...] = g
        opt.step()
        want = tw.detach().numpy()
        assert_close(p.data, want, rtol=rtol, err_msg=f"param, step {step}")
        tstate, state = topt.state[tw], opt.state[p]
        assert set(state) == set(tstate)
        assert state["step"] == int(tstate["step"]) == step
        for key in sorted(set(tstate) - {"step"}):
            assert_close(state[key], tstate[key].numpy(), rtol=rtol, err_msg=f"{key}, step {step}")
    assert not np.allclose(p.data, w0)  # the parameters moved
    state = opt.state[p]
    if "max_exp_avg_sq" in state:  # amsgrad was not vacuous: the maximum differs from v
        assert np.any(state["max_exp_avg_sq"] > state["exp_avg_sq"] * 1.01)
    if "grad_avg" in state:
        assert np.abs(state["grad_avg"]).max() > 0.05


@pytest.mark.parametrize("name", CLASSES)
def test_defaults_and_signatures_match_torch(name):
    torch = pytest.importorskip("torch")
    ours = getattr(fnn.optim, name)([Parameter(np.zeros(3), "w")])
    theirs = getattr(torch.optim, name)([torch.nn.Parameter(torch.zeros(3))])
    assert ours.defaults, name
    for key, value in ours.defaults.items():
        assert key in theirs.defaults, f"{name}: {key} is not a torch.optim.{name} option"
        assert value == theirs.defaults[key], f"{name}.{key}: {value!r} != {theirs.defaults[key]!r}"
        assert ours.param_groups[0][key] == theirs.param_groups[0][key]
    # Positional order and defaults: ours are a prefix of torch's signature.
    mine = list(inspect.signature(getattr(fnn.optim, name)).parameters.values())
    torch_params = list(inspect.signature(getattr(torch.optim, name)).parameters.values())
    assert [p.name for p in mine] == [p.name for p in torch_params[:len(mine)]]
    for a, b in zip(mine[1:], torch_params[1:]):
        assert a.default == b.default, f"{name}({a.name}=...)"


def test_adamw_default_weight_decay_is_decoupled():
    """AdamW's default weight_decay 1e-2 shrinks the parameter by (1 - lr * wd) before the Adam
    step: with a zero gradient (m = v = 0), the step is exactly that shrink."""
    p = Parameter(np.full(4, 2.0), "w")
    opt = fnn.optim.AdamW([p], lr=0.1)
    opt.step()
    np.testing.assert_array_equal(p.data, np.full(4, 2.0 * (1 - 0.1 * 1e-2)))
    q = Parameter(np.full(4, 2.0), "w")
    fnn.optim.Adam([q], lr=0.1, weight_decay=1e-2).step()  # coupled: the decay is normalized away
    np.testing.assert_allclose(q.data, 2.0 - 0.1, rtol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("beta2", [0.999, 0.9999])
def test_adam_first_step_moves_each_coordinate_by_lr(beta2, dtype):
    """After one step, m_hat = g and v_hat = g^2, so Adam moves each coordinate by lr * sign(g)
    (up to eps), whatever beta2 is. Tolerance: float32's rounding of the few operations."""
    rng = np.random.default_rng(3)
    g = (rng.standard_normal(1000) + 0.1).astype(dtype)
    p = Parameter(np.zeros(1000, dtype), "w")
    opt = fnn.optim.Adam([p], lr=0.1, betas=(0.9, beta2), eps=1e-12)
    p.grad[...] = g
    opt.step()
    g64 = g.astype(np.float64)
    want = (-0.1 * g64 / (np.abs(g64) + 1e-12)).astype(dtype)
    np.testing.assert_allclose(p.data, want, rtol=4 * np.finfo(dtype).eps)


# ------------------------------------------------------------------------------------------------
# The (1 - beta) coefficients, rounded once (float32 once computed them from the rounded beta)


def _first_step_states(kernels, dtype, beta2):
    """One Adam and one RMSprop step with g = 1 from zero state: (Adam param, exp_avg_sq,
    RMSprop square_avg)."""
    p, m, v = (np.zeros(3, dtype) for _ in range(3))
    kernels.adam_update(p, np.ones(3, dtype), m, v, None, lr=0.1, beta1=0.9, beta2=beta2, step=1)
    s = np.zeros(3, dtype)
    kernels.rmsprop_update(np.zeros(3, dtype), np.ones(3, dtype), s, None, None, lr=0.01,
                           alpha=beta2)
    return p, v, s


@needs_compiled
@pytest.mark.backend_independent
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("beta2", [0.999, 0.9999])
def test_second_moment_coefficient_is_rounded_once(beta2, dtype):
    """With g = 1, one step gives exp_avg_sq = square_avg = (1 - beta2) rounded once to the dtype,
    as torch computes it, and Adam's first step is lr / (1 + eps). Once, float32 computed
    1 - float32(0.9999) = 1.00016594e-4 (and the compiled Adam's first step was -0.099991724)."""
    tolerance = 4 * np.finfo(dtype).eps
    for kernels in (C, P):
        p, v, s = _first_step_states(kernels, dtype, beta2)
        np.testing.assert_allclose(v, dtype(1 - beta2), rtol=tolerance,
                                   err_msg=f"{kernels.name} exp_avg_sq")
        np.testing.assert_allclose(s, dtype(1 - beta2), rtol=tolerance,
                                   err_msg=f"{kernels.name} square_avg")
        np.testing.assert_allclose(p, -0.1 / (1 + 1e-8), rtol=tolerance,
                                   err_msg=f"{kernels.name} Adam param")


# ------------------------------------------------------------------------------------------------
# Compiled kernel == NumPy twin


def run_kernel(kernels, variant, p0, grads):
    """Run `variant`'s update with the given kernel set over `grads`; returns (param, states)."""
    name, options = VARIANTS[variant]
    p = p0.copy()
    zeros = lambda: np.zeros_like(p0)  # noqa: E731
    if name == "Adagrad":
        states = {"sum": np.full_like(p0, options.get("initial_accumulator_value", 0.0))}
        kw = {k: v for k, v in options.items() if k != "initial_accumulator_value"}
        kw.setdefault("lr", 1e-2)
        for step, g in enumerate(grads, start=1):
            kernels.adagrad_update(p, g, states["sum"], step=step, **kw)
    elif name == "RMSprop":
        states = {"square_avg": zeros(), "grad_avg": zeros(), "momentum_buffer": zeros()}
        kw = dict(options)
        kw.setdefault("lr", 1e-2)
        for g in grads:
            kernels.rmsprop_update(p, g, states["square_avg"], states["grad_avg"],
                                   states["momentum_buffer"], **kw)
        if not options.get("centered"):
            assert not states.pop("grad_avg").any()  # untouched
        if not options.get("momentum"):
            assert not states.pop("momentum_buffer").any()
    else:
        states = {"exp_avg": zeros(), "exp_avg_sq": zeros(), "max_exp_avg_sq": zeros()}
        kw = {k: v for k, v in options.items() if k != "betas"}
        kw["beta1"], kw["beta2"] = options.get("betas", (0.9, 0.999))
        kw.setdefault("lr", 1e-3)
        if name == "AdamW":
            kw["decoupled_weight_decay"] = True
            kw.setdefault("weight_decay", 1e-2)
        for step, g in enumerate(grads, start=1):
            kernels.adam_update(p, g, states["exp_avg"], states["exp_avg_sq"],
                                states["max_exp_avg_sq"], step=step, **kw)
        if not options.get("amsgrad"):
            assert not states.pop("max_exp_avg_sq").any()
    return p, states


def assert_runs_agree(got, want, rtol, where):
    (p_got, s_got), (p_want, s_want) = got, want
    assert set(s_got) == set(s_want)
    assert_close(p_got, p_want, rtol=rtol, scale=float(np.abs(p_want).max()) + 1.0,
                 err_msg=f"{where}: param")
    for key in s_want:
        assert_close(s_got[key], s_want[key], rtol=rtol, scale=float(np.abs(s_want[key]).max()),
                     err_msg=f"{where}: {key}")


@needs_compiled
@pytest.mark.backend_independent
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [1, 7, 33, 1000])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_kernel_matches_twin(variant, size, dtype):
    rng = np.random.default_rng(size)
    p0 = rng.standard_normal(size).astype(dtype)
    grads = gradients(rng, size, dtype, steps=6)
    got, want = run_kernel(C, variant, p0, grads), run_kernel(P, variant, p0, grads)
    assert not np.array_equal(got[0], p0)
    assert_runs_agree(got, want, RTOL[np.dtype(dtype)], f"{variant} size {size}")


@needs_compiled
@pytest.mark.backend_independent
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", ["adagrad_all_options", "rmsprop_centered_momentum",
                                     "adam_weight_decay", "adam_amsgrad", "adamw_amsgrad"])
def test_kernel_matches_twin_above_the_threading_threshold(variant, dtype):
    size = 100_003  # > 65536 (FNN_PARALLEL_MIN_WORK) and odd
    rng = np.random.default_rng(11)
    p0 = rng.standard_normal(size).astype(dtype)
    grads = gradients(rng, size, dtype, steps=3)
    want = run_kernel(P, variant, p0, grads)
    previous = fastnn.get_num_threads()
    try:
        results = {}
        for threads in (1, 2):
            fastnn.set_num_threads(threads)
            if fastnn.openmp_enabled():
                assert _kernels.parallel.get_num_threads() == threads
            results[threads] = run_kernel(C, variant, p0, grads)
    finally:
        fastnn.set_num_threads(previous)
    assert fastnn.get_num_threads() == previous
    for threads, got in results.items():
        assert_runs_agree(got, want, RTOL[np.dtype(dtype)], f"{threads} threads")
    # Elementwise updates: the thread count cannot change a single bit.
    np.testing.assert_array_equal(results[1][0], results[2][0])
    for key in results[1][1]:
        np.testing.assert_array_equal(results[1][1][key], results[2][1][key])


@needs_compiled
@pytest.mark.backend_independent
@pytest.mark.parametrize("variant", ["adagrad_all_options", "rmsprop_centered_momentum",
                                     "adamw_amsgrad"])
def test_kernels_convert_non_contiguous_and_other_dtype_gradients(variant):
    rng = np.random.default_rng(5)
    p0 = rng.standard_normal((6, 5))
    grads = [rng.integers(-3, 4, size=(6, 5)).astype(np.float64) for _ in range(3)]
    odd = [np.asfortranarray(g).astype(np.int64) for g in grads]
    assert not odd[0].flags.c_contiguous
    for kernels in (C, P):
        got = run_kernel(kernels, variant, p0, odd)
        want = run_kernel(kernels, variant, p0, grads)
        np.testing.assert_array_equal(got[0], want[0])


# ------------------------------------------------------------------------------------------------
# Hyperparameter validation, as torch's

VALIDATED = {
    "Adagrad": ["lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"],
    "RMSprop": ["lr", "alpha", "eps", "weight_decay", "momentum"],
    "Adam": ["lr", "eps", "weight_decay", "beta0", "beta1"],
    "AdamW": ["lr", "eps", "weight_decay", "beta0", "beta1"],
}
PROBE_VALUES = [-1.0, -1e-12, 0.0, 0.5, 0.999999, 1.0, 1.5, float("nan")]


def _construct(module, name, key, value, make_param):
    if key.startswith("beta"):
        betas = [0.9, 0.999]
        betas[int(key[-1])] = value
        kwargs = {"betas": tuple(betas)}
    else:
        kwargs = {key: value}
    return getattr(module, name)([make_param()], **kwargs)


@pytest.mark.parametrize("name,key", [(n, k) for n, keys in VALIDATED.items() for k in keys])
def test_hyperparameter_validation_matches_torch(name, key):
    """For each value, ours raises ValueError exactly when torch does."""
    torch = pytest.importorskip("torch")
    raised = {}
    for value in PROBE_VALUES:
        outcome = []
        for module, make in ((fnn.optim, lambda: Parameter(np.zeros(2), "w")),
                             (torch.optim, lambda: torch.nn.Parameter(torch.zeros(2)))):
            try:
                _construct(module, name, key, value, make)
            except ValueError:
                outcome.append(True)
            else:
                outcome.append(False)
        assert outcome[0] == outcome[1], f"{name}({key}={value}): ours raised {outcome[0]}, " \
                                         f"torch raised {outcome[1]}"
        raised[value] = outcome[0]
    assert raised[-1.0] and not raised[0.5]  # the probe is not vacuous


@pytest.mark.parametrize("name", ["Adagrad", "RMSprop", "Adam", "AdamW"])
def test_validation_messages_and_groups(name):
    cls = getattr(fnn.optim, name)
    p = Parameter(np.zeros(2), "w")
    with pytest.raises(ValueError, match="lr"):
        cls([p], lr=-0.1)
    with pytest.raises(ValueError, match="eps"):
        cls([p], eps=-1e-8)
    with pytest.raises(ValueError, match="empty"):
        cls([])
    with pytest.raises(TypeError, match="Parameters"):
        cls([np.zeros(2)])
    opt = cls([p], lr=0.1)
    with pytest.raises(ValueError, match="lr"):  # a group's own hyperparameters are checked too
        opt.add_param_group({"params": [Parameter(np.zeros(2), "v")], "lr": -1.0})
    assert len(opt.param_groups) == 1


@pytest.mark.parametrize("betas", [(0.9,), (0.9, 0.99, 0.999)])
def test_adam_betas_must_be_a_pair(betas):
    with pytest.raises(ValueError, match="betas"):
        fnn.optim.Adam([Parameter(np.zeros(2), "w")], betas=betas)


# ------------------------------------------------------------------------------------------------
# Parameter groups, state_dict / load_state_dict


def test_parameter_groups_use_their_own_hyperparameters():
    """Adam's first step is lr * sign(g): each group moves by its own lr; amsgrad per group."""
    a, b = Parameter(np.zeros(3), "a"), Parameter(np.zeros(3), "b")
    opt = fnn.optim.Adam([{"params": [a]}, {"params": b, "lr": 0.5, "amsgrad": True}], lr=0.1)
    assert opt.param_groups[0]["amsgrad"] is False and opt.param_groups[1]["amsgrad"] is True
    a.grad[...] = [1.0, -2.0, 3.0]
    b.grad[...] = [-1.0, 2.0, -3.0]
    opt.step()
    np.testing.assert_allclose(a.data, [-0.1, 0.1, -0.1], rtol=1e-7)
    np.testing.assert_allclose(b.data, [0.5, -0.5, 0.5], rtol=1e-7)
    assert "max_exp_avg_sq" not in opt.state[a] and "max_exp_avg_sq" in opt.state[b]


def _make_optimizer(variant, params, **override):
    name, options = VARIANTS[variant]
    return getattr(fnn.optim, name)(params, **{**options, **override})


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_state_dict_resumes_bit_identically(variant, dtype):
    rng = np.random.default_rng(21)
    shapes = [(5, 3), (3,)]
    grads = [[g.astype(dtype) for g in (rng.standard_normal(s) for s in shapes)]
             for _ in range(8)]
    params_a = [Parameter(rng.standard_normal(s).astype(dtype), n) for s, n in zip(shapes, "Wb")]
    opt_a = _make_optimizer(variant, params_a)
    for step_grads in grads[:4]:
        for p, g in zip(params_a, step_grads):
            p.grad[...] = g
        opt_a.step()
    saved = opt_a.state_dict()
    saved_arrays = {(i, k): v.copy() for i, s in saved["state"].items() for k, v in s.items()
                    if isinstance(v, np.ndarray)}
    assert saved_arrays
    params_b = [Parameter(p.data.copy(), p.name) for p in params_a]
    opt_b = _make_optimizer(variant, params_b, lr=0.123)  # hyperparameters come from the dict
    opt_b.load_state_dict(saved)
    assert opt_b.param_groups[0]["lr"] == opt_a.param_groups[0]["lr"]
    for step_grads in grads[4:]:
        for pa, pb, g in zip(params_a, params_b, step_grads):
            pa.grad[...] = g
            pb.grad[...] = g
        opt_a.step()
        opt_b.step()
    for pa, pb in zip(params_a, params_b):
        np.testing.assert_array_equal(pa.data, pb.data)
    for i, (pa, pb) in enumerate(zip(params_a, params_b)):
        assert opt_a.state[pa].keys() == opt_b.state[pb].keys()
        assert opt_a.state[pa]["step"] == opt_b.state[pb]["step"] == 8
        for key, value in opt_a.state[pa].items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(value, opt_b.state[pb][key])
                assert opt_b.state[pb][key].dtype == np.dtype(dtype)
    # The saved dict was a copy: stepping afterwards did not change it, and loading it did not
    # make the two optimizers share buffers.
    for (i, key), value in saved_arrays.items():
        np.testing.assert_array_equal(saved["state"][i][key], value)
        assert not np.shares_memory(saved["state"][i][key], opt_b.state[params_b[i]][key])


def test_load_state_dict_converts_to_the_parameters_dtype():
    p64 = Parameter(np.ones(4), "w")
    opt64 = fnn.optim.Adam([p64], lr=0.1)
    p64.grad[...] = 1.0
    opt64.step()
    p32 = Parameter(p64.data.astype(np.float32), "w")
    opt32 = fnn.optim.Adam([p32], lr=0.1)
    opt32.load_state_dict(opt64.state_dict())
    assert opt32.state[p32]["exp_avg"].dtype == np.float32
    p32.grad[...] = 1.0
    opt32.step()  # the kernel accepts the converted buffers
    np.testing.assert_allclose(p32.data, 1.0 - 0.2, rtol=1e-6)


def test_load_state_dict_rejects_mismatched_groups():
    a, b = Parameter(np.zeros(2), "a"), Parameter(np.zeros(2), "b")
    saved = fnn.optim.Adam([a, b]).state_dict()
    with pytest.raises(ValueError, match="groups"):
        fnn.optim.Adam([a]).load_state_dict(saved)
    with pytest.raises(ValueError, match="groups"):
        fnn.optim.Adam([{"params": [a]}, {"params": [b]}]).load_state_dict(saved)


# ------------------------------------------------------------------------------------------------
# Optimizer state and argument errors at the kernel level, alike on both backends


def _adam(k, p, g, states, **kw):
    return k.adam_update(p, g, states[0], states[1], states[2], lr=0.1, step=1, **kw)


def _rmsprop(k, p, g, states, **kw):
    return k.rmsprop_update(p, g, states[0], states[1], states[2], lr=0.1, **kw)


def _adagrad(k, p, g, states, **kw):
    return k.adagrad_update(p, g, states[0], lr=0.1, step=1, **kw)


# (kernel, kwargs, which state buffer to break (index), expected error for the broken buffer kinds)
STATE_CASES = {
    "adam-exp_avg": (_adam, {}, 0),
    "adam-exp_avg_sq": (_adam, {}, 1),
    "adam-max_exp_avg_sq": (_adam, {"amsgrad": True}, 2),
    "rmsprop-square_avg": (_rmsprop, {}, 0),
    "rmsprop-grad_avg": (_rmsprop, {"centered": True}, 1),
    "rmsprop-momentum_buffer": (_rmsprop, {"momentum": 0.9}, 2),
    "adagrad-state_sum": (_adagrad, {}, 0),
}
BROKEN = {
    "other_dtype": (lambda: np.zeros(4, np.float32), TypeError),
    "other_shape": (lambda: np.zeros(5), ValueError),
    "non_contiguous": (lambda: np.zeros(8)[::2], ValueError),
    "read_only": (lambda: _read_only(np.zeros(4)), ValueError),
    "list": (lambda: [0.0] * 4, TypeError),
}


def _read_only(a):
    a.flags.writeable = False
    return a


@needs_compiled
@pytest.mark.backend_independent
@pytest.mark.parametrize("broken", sorted(BROKEN))
@pytest.mark.parametrize("case", sorted(STATE_CASES))
def test_bad_state_buffers_raise_the_same_error_and_write_nothing(case, broken):
    call, kwargs, index = STATE_CASES[case]
    make_bad, error = BROKEN[broken]
    for kernels in (C, P):
        p = np.ones(4)
        states = [np.zeros(4) for _ in range(3)]
        states[index] = make_bad()
        with pytest.raises(error):
            call(kernels, p, np.ones(4), states, **kwargs)
        np.testing.assert_array_equal(p, np.ones(4))
        for i, s in enumerate(states):
            if i != index:
                assert not s.any()


@needs_compiled
@pytest.mark.backend_independent
def test_missing_state_buffers_raise_type_error_in_a_subprocess():
    """A None state buffer the update needs is a TypeError on both backends, and the parameter
    is untouched. In a subprocess: a compiled kernel handed NULL could crash the interpreter."""
    code = textwrap.dedent("""
        import numpy as np
        from fastnn import _kernels
        z = lambda: np.zeros(4)
        calls = {
            "adam": lambda k, p: k.adam_update(p, np.ones(4), None, z(), None, lr=0.1, step=1),
            "adam_sq": lambda k, p: k.adam_update(p, np.ones(4), z(), None, None, lr=0.1, step=1),
            "amsgrad": lambda k, p: k.adam_update(p, np.ones(4), z(), z(), None, lr=0.1, step=1,
                                                  amsgrad=True),
            "adamw": lambda k, p: k.adam_update(p, np.ones(4), z(), None, None, lr=0.1, step=1,
                                                decoupled_weight_decay=True),
            "rmsprop": lambda k, p: k.rmsprop_update(p, np.ones(4), None, None, None, lr=0.1),
            "centered": lambda k, p: k.rmsprop_update(p, np.ones(4), z(), None, None, lr=0.1,
                                                      centered=True),
            "momentum": lambda k, p: k.rmsprop_update(p, np.ones(4), z(), None, None, lr=0.1,
                                                      momentum=0.5),
            "adagrad": lambda k, p: k.adagrad_update(p, np.ones(4), None, lr=0.1, step=1),
        }
        for name, call in calls.items():
            for kernels in (_kernels.CYTHON, _kernels.NUMPY):
                p = np.ones(4)
                try:
                    call(kernels, p)
                except TypeError:
                    print(name, kernels.name, "TypeError", bool((p == 1).all()))
                else:
                    print(name, kernels.name, "no-error")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, f"exit status {result.returncode}: {result.stderr[-1000:]}"
    lines = result.stdout.splitlines()
    assert len(lines) == 16
    for line in lines:
        name, backend, outcome, *untouched = line.split()
        assert outcome == "TypeError" and untouched == ["True"], line


@needs_compiled
@pytest.mark.backend_independent
def test_optional_state_buffers_may_be_none_when_unused():
    for kernels in (C, P):
        p = np.ones(4)
        kernels.adam_update(p, np.ones(4), np.zeros(4), np.zeros(4), None, lr=0.1, step=1)
        np.testing.assert_allclose(p, 0.9, rtol=1e-7)
        p = np.ones(4)
        kernels.rmsprop_update(p, np.ones(4), np.zeros(4), None, None, lr=0.01)
        np.testing.assert_allclose(p, 1 - 0.01 / (0.1 + 1e-8), rtol=1e-12)


@needs_compiled
@pytest.mark.backend_independent
@pytest.mark.parametrize("option,value", [("lr", None), ("lr", "0.1"), ("lr", True),
                                          ("eps", None), ("weight_decay", [0.1]),
                                          ("step", None), ("beta1", "0.9"), ("beta2", np.bool_(1))])
def test_adam_update_rejects_non_numeric_hyperparameters_on_both(option, value):
    for kernels in (C, P):
        p = np.ones(4)
        kwargs = dict(lr=0.1, step=1)
        kwargs[option] = value
        with pytest.raises(TypeError):
            kernels.adam_update(p, np.ones(4), np.zeros(4), np.zeros(4), None, **kwargs)
        np.testing.assert_array_equal(p, np.ones(4))


@needs_compiled
@pytest.mark.backend_independent
@pytest.mark.parametrize("kernel", ["adagrad", "rmsprop"])
@pytest.mark.parametrize("option,value", [("lr", None), ("eps", "1e-8"), ("weight_decay", False)])
def test_adagrad_rmsprop_reject_non_numeric_hyperparameters_on_both(kernel, option, value):
    for kernels in (C, P):
        p = np.ones(4)
        kwargs = {"lr": 0.1, option: value}
        with pytest.raises(TypeError):
            if kernel == "adagrad":
                kernels.adagrad_update(p, np.ones(4), np.zeros(4), step=1, **kwargs)
            else:
                kernels.rmsprop_update(p, np.ones(4), np.zeros(4), None, None, **kwargs)
        np.testing.assert_array_equal(p, np.ones(4))


STEP_BELOW_ONE = {
    # once: the twin wrote exp_avg and exp_avg_sq before a ZeroDivisionError
    "adam-step0": lambda k, p, s: k.adam_update(p, np.ones(4), s[0], s[1], None, lr=0.1, step=0),
    # once: a TypeError (complex power) on the compiled kernel, NaN parameters on the twin
    "adam-step-1": lambda k, p, s: k.adam_update(p, np.ones(4), s[0], s[1], None, lr=0.1,
                                                 step=-1),
    "adam-step-half": lambda k, p, s: k.adam_update(p, np.ones(4), s[0], s[1], None, lr=0.1,
                                                    step=0.5),
    "adam-step-nan": lambda k, p, s: k.adam_update(p, np.ones(4), s[0], s[1], None, lr=0.1,
                                                   step=float("nan")),
    # once: the twin wrote state_sum before a ZeroDivisionError
    "adagrad-step0-lr_decay": lambda k, p, s: k.adagrad_update(p, np.ones(4), s[0], lr=0.1,
                                                               lr_decay=1.0, step=0),
    "adagrad-step0": lambda k, p, s: k.adagrad_update(p, np.ones(4), s[0], lr=0.1, step=0),
}


@needs_compiled
@pytest.mark.backend_independent
@pytest.mark.parametrize("case", sorted(STEP_BELOW_ONE))
def test_a_step_below_one_raises_alike_and_writes_nothing(case):
    """Steps count from 1; a call with step < 1 is a ValueError on both backends, raised before
    anything is written."""
    for kernels in (C, P):
        p, states = np.ones(4), [np.zeros(4), np.zeros(4)]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(ValueError, match="step"):
                STEP_BELOW_ONE[case](kernels, p, states)
        np.testing.assert_array_equal(p, np.ones(4), err_msg=kernels.name)
        assert not any(s.any() for s in states), f"{kernels.name} wrote the state"


@needs_compiled
@pytest.mark.backend_independent
def test_update_kernels_accept_0d_parameters():
    """A 0-d parameter (as torch.optim updates 0-d tensors); once rejected with 'grad must have
    shape (), got (1,)' because the 0-d grad was converted to shape (1,)."""
    for kernels in (C, P):
        p = np.array(1.0)
        kernels.adam_update(p, np.array(2.0), np.array(0.0), np.array(0.0), None, lr=0.1, step=1)
        assert p.shape == () and float(p) == pytest.approx(0.9, rel=1e-7)
        p, state_sum = np.array(1.0, np.float32), np.array(0.0, np.float32)
        kernels.adagrad_update(p, 2, state_sum, lr=0.5, step=1)
        assert p.shape == () and float(p) == pytest.approx(0.5, rel=1e-6)
        p = np.array(1.0)
        kernels.sgd_update(p, np.array(4.0), None, lr=0.25)
        assert p.shape == () and float(p) == 0.0
    p = Parameter(np.array(3.0), "scale")
    opt = fnn.optim.RMSprop([p], lr=0.01, momentum=0.5)
    p.grad[...] = 1.0
    opt.step()
    assert p.data.shape == () and float(p.data) == pytest.approx(3 - 0.01 / (0.1 + 1e-8))


# The compiled updates skip their Python checks when the arrays are already what the checks would
# accept unchanged (optim.pyx's _plain); everything else must still be converted or refused
# exactly as the twin does.
def _update_call(kernel, p, g, states, **hyper):
    if kernel == "sgd":
        return lambda k: k.sgd_update(p, g, states[0], lr=0.1, momentum=0.9, **hyper)
    if kernel == "adagrad":
        return lambda k: k.adagrad_update(p, g, states[0], lr=0.1, step=hyper.pop("step", 2),
                                          **hyper)
    if kernel == "rmsprop":
        return lambda k: k.rmsprop_update(p, g, states[0], states[1], states[2], lr=0.1,
                                          centered=True, momentum=0.5, **hyper)
    return lambda k: k.adam_update(p, g, states[0], states[1], states[2], lr=0.1, amsgrad=True,
                                   step=hyper.pop("step", 2), **hyper)


def _odd_arguments(case, shape, dtype):
    """(param, grad, states, hyperparameters) with one thing changed by `case`."""
    rng = np.random.default_rng(3)
    p = rng.standard_normal(shape).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    # (rmsprop: square_avg, grad_avg, buffer; adam: exp_avg, exp_avg_sq, max: no sqrt of < 0)
    states = [(np.abs(rng.standard_normal(shape)) * scale + shift).astype(dtype)
              for scale, shift in ((1.0, 1.0), (0.1, 0.0), (1.0, 1.0))]
    hyper = {}
    other = np.float64 if dtype == np.float32 else np.float32
    if case == "grad-other-dtype":
        g = g.astype(other)
    elif case == "grad-non-contiguous":
        g = np.asfortranarray(np.stack([g, g], axis=-1))[..., 0]
    elif case == "grad-int":
        g = np.rint(g).astype(np.int64)
    elif case == "grad-list":
        g = g.tolist()
    elif case == "grad-wrong-shape":
        g = g.reshape(-1)[:-1] if g.size > 1 else np.zeros(2, dtype)
    elif case == "param-read-only":
        p.flags.writeable = False
    elif case == "param-non-contiguous":
        p = np.asfortranarray(np.stack([p, p], axis=-1))[..., 0]
    elif case == "param-other-dtype":
        p = p.astype(np.int32)
    elif case == "state-read-only":
        states[0].flags.writeable = False
    elif case == "state-other-dtype":
        states[0] = states[0].astype(other)
    elif case == "state-wrong-shape":
        states[0] = np.zeros(p.size + 1, dtype)
    elif case == "state-missing":
        states[0] = None
    elif case == "numpy-scalar-hyperparameter":
        hyper["weight_decay"] = np.float32(0.01)
    elif case == "bool-hyperparameter":
        hyper["weight_decay"] = True
    elif case == "step-zero":
        hyper["step"] = 0
    return p, g, states, hyper


ODD_CASES = ["plain", "grad-other-dtype", "grad-non-contiguous", "grad-int", "grad-list",
             "grad-wrong-shape", "param-read-only", "param-non-contiguous", "param-other-dtype",
             "state-read-only", "state-other-dtype", "state-wrong-shape", "state-missing",
             "numpy-scalar-hyperparameter", "bool-hyperparameter", "step-zero"]


@needs_compiled
@pytest.mark.backend_independent
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ODD_CASES)
@pytest.mark.parametrize("kernel", ["sgd", "adagrad", "rmsprop", "adam"])
def test_updates_accept_and_refuse_what_the_twin_does(kernel, case, dtype):
    if case == "step-zero" and kernel in ("sgd", "rmsprop"):
        pytest.skip("no step argument")
    outcomes = []
    for kernels in (C, P):
        p, g, states, hyper = _odd_arguments(case, (7, 3), dtype)
        before = [np.array(a, copy=True) for a in [p] + [s for s in states if s is not None]]
        try:
            _update_call(kernel, p, g, states, **hyper)(kernels)
        except (TypeError, ValueError) as error:
            outcomes.append(type(error))
            after = [p] + [s for s in states if s is not None]
            for old, new in zip(before, after):  # refused: nothing written
                np.testing.assert_array_equal(new, old)
        else:
            outcomes.append((np.array(p), [np.array(s) for s in states]))
    compiled, twin = outcomes
    if isinstance(twin, type):
        assert compiled is twin
    else:
        assert not isinstance(compiled, type), "compiled refused what the twin accepted"
        rtol = RTOL[np.dtype(dtype)]
        assert_close(compiled[0], twin[0], rtol=rtol, scale=float(np.abs(twin[0]).max()) + 1.0)
        for got, want in zip(compiled[1], twin[1]):
            assert_close(got, want, rtol=rtol, scale=float(np.abs(want).max()) + 1.0)
        assert case not in ("grad-wrong-shape", "param-read-only", "state-read-only",
                            "state-other-dtype", "state-wrong-shape", "bool-hyperparameter",
                            "param-other-dtype"), "accepted what should have been refused"


@needs_compiled
@pytest.mark.backend_independent
@pytest.mark.parametrize("betas", [(2, 0.999), (0.9, 1), (0.9, 1.0), (-0.1, 0.999),
                                   (0.9, float("nan"))])
def test_adam_update_refuses_betas_outside_0_1_alike(betas):
    """Betas outside [0, 1) are a ValueError on both backends, before anything is written; an
    integer beta1 of 2 with a large step once made the kernels compute 2 ** step forever."""
    for kernels in (C, P):
        p, m, v = np.ones(4), np.zeros(4), np.zeros(4)
        with pytest.raises(ValueError, match="beta"):
            kernels.adam_update(p, np.ones(4), m, v, None, lr=0.1, beta1=betas[0],
                                beta2=betas[1], step=10**30)
        np.testing.assert_array_equal(p, np.ones(4))
        assert not m.any() and not v.any()
