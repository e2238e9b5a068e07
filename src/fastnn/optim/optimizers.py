"""The Optimizer base class and the first-order optimizers (fastnn.optim re-exports them)."""
import math
from operator import attrgetter

import numpy as np

from .. import _backend
from .._validation import check_float
from ..layers import Parameter, flat_run


class Optimizer:
    """Holds parameter groups (dicts with "params" and hyperparameters) and per-parameter state.

    When a group's parameters lie one after another in a single flat array, as a Sequential's do
    (data in one array, gradients in another: each Parameter records its place in the model's
    FlatStorage, see fastnn.layers.flat_run), step() updates the whole group in one kernel call
    over the flat arrays, with its state in flat arrays too; each parameter's state entries are
    views of their part, so `state`, state_dict() and load_state_dict() read as if each
    parameter were updated on its own, and the numbers are the same. Frozen parameters
    (`requires_grad = False`) are skipped: no update, no weight decay, no state; freezing the
    first layers of a Sequential leaves the rest one flat run, still updated in one call.

    A model computing in bfloat16 keeps a bf16-valued copy of each parameter (its GEMM
    operand). The built-in optimizers write it in the update's own pass (the kernels'
    bf16_copy), over the flat run when the copies lie in one store laid out like the flat data,
    and mark it fresh, so the next forward does not round the weights again. Only an `_update`
    whose class sets `_update_writes_bf16 = True` is trusted to do so: a subclass that overrides
    `_update` leaves the copies stale, and the forward rounds them.
    """

    _update_writes_bf16 = False

    def __init__(self, params, defaults):
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = {}
        self._flat = {}  # id(group) -> _FlatGroup, built at the first step
        self._checked = {}  # id(group) -> the group's values when last checked
        self._writes_bf16 = _writes_bf16_copies(type(self))
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group):
        group = dict(group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Parameter) else list(params)
        for p in group["params"]:
            if not isinstance(p, Parameter):
                raise TypeError(f"{type(self).__name__}: expected fastnn Parameters (from "
                                f"model.parameters()), got {type(p).__name__}")
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group):
        pass

    @staticmethod
    def _check_range(name, key, value, low=0.0, high=None, high_open=False):
        check_float(f"{name}: {key}", value, low, high, high_open=high_open)

    def zero_grad(self):
        for group in self.param_groups:
            for p in group["params"]:
                p.zero_grad()

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            # Hyperparameters can be edited between steps (schedules, or by hand): a group is
            # checked again whenever one of its values is another object than when last checked.
            # checked again whenever a value differs from the one last checked (one tuple
            # comparison, element identity first).
            values = tuple(group.values())
            if values != self._checked.get(id(group)):
                self._check_group(group)
                self._checked[id(group)] = values
            # Frozen parameters (requires_grad False) get no update and no state.
            params = [p for p in group["params"] if p._requires_grad]
            flat = self._flat.get(id(group))
            if flat is None or not flat.still_valid(params):
                # (a replaced Parameter gets a new view object: still_valid fails, we get here)
                if any(map(_replaced, group["params"])):
                    names = [p.name for p in group["params"] if p.replaced]
                    raise RuntimeError(f"{type(self).__name__}.step: parameters {names} are no "
                                       "longer their layers' (a layer was re-initialized in "
                                       "another dtype): build the optimizer from "
                                       "model.parameters() again")
                flat = self._flat[id(group)] = _FlatGroup.build(params, self.state)
            if flat:
                flat.update(self, group)
            else:
                for p in params:
                    self._update(p, group, self.state.setdefault(p, {}))
                    p._bf16_fresh = self._bf16_copy(p) is not None
        return loss

    def _update(self, p, group, state):
        raise NotImplementedError

    def _bf16_copy(self, p):
        """The array this optimizer's update writes p's bf16 copy into (the kernels'
        bf16_copy), or None: when p has none, or _update does not write it (see Optimizer)."""
        copy = p._bf16
        if copy is None or not self._writes_bf16 or copy.shape != p._data.shape:
            return None
        return copy

    def state_dict(self):
        """Hyperparameters per group and copies of the state, keyed by parameter index."""
        index = {p: i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}
        groups = [{**{k: v for k, v in g.items() if k != "params"},
                   "params": [index[p] for p in g["params"]]} for g in self.param_groups]
        state = {index[p]: {k: (v.copy() if isinstance(v, np.ndarray) else v)
                            for k, v in s.items()} for p, s in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(g["params"]) != len(mine["params"])
                for g, mine in zip(groups, self.param_groups)):
            raise ValueError("load_state_dict: the saved parameter groups do not match this "
                             "optimizer's")
        name = type(self).__name__
        known = set(self.defaults) | {"params", "initial_lr"}
        for k, saved in enumerate(groups):
            unknown = sorted(set(saved) - known)
            if unknown:
                raise ValueError(f"{name}.load_state_dict: param group {k} has hyperparameters "
                                 f"{unknown} that {name} does not take (a state_dict of another "
                                 f"optimizer?); {name} takes {sorted(set(self.defaults))}")
        params = [p for g in self.param_groups for p in g["params"]]
        for i, s in state_dict["state"].items():
            p = params[int(i)]
            for key, v in s.items():
                if isinstance(v, np.ndarray) and v.shape != p.shape:
                    raise ValueError(f"{name}.load_state_dict: state {key!r} of parameter {i} "
                                     f"has shape {v.shape}, the parameter {p.shape}")
        updated = [{**mine, **{k: v for k, v in saved.items() if k != "params"}}
                   for saved, mine in zip(groups, self.param_groups)]
        for group in updated:
            self._check_group(group)  # all checked before any is changed
        for saved, mine in zip(groups, self.param_groups):
            mine.update({k: v for k, v in saved.items() if k != "params"})
        self.state = {}
        self._flat = {}
        for i, s in state_dict["state"].items():
            p = params[int(i)]
            self.state[p] = {k: (np.array(v, dtype=p.dtype) if isinstance(v, np.ndarray) else v)
                             for k, v in s.items()}


_grad_cleared = attrgetter("_grad_is_zero")
_replaced = attrgetter("replaced")


def _writes_bf16_copies(cls):
    """Whether cls's _update writes the bf16 copies: the class that defines _update says so
    (a subclass that overrides it does not inherit the promise)."""
    owner = next(k for k in cls.__mro__ if "_update" in vars(k))
    return bool(vars(owner).get("_update_writes_bf16", False))


def _flat_copy(params, storage, start, stop):
    """Elements [start, stop) of the one array the params' bf16 copies are views of, when it is
    laid out like storage.data (fastnn._mixed.attach_copies) and each copy is its part, in
    order; else None (a float32 model has no copies)."""
    base = getattr(params[0]._bf16, "base", None)
    if not (isinstance(base, np.ndarray) and base.dtype == np.float32
            and base.shape == storage.data.shape and base.flags.c_contiguous
            and base.flags.writeable):
        return None
    origin, offset = _address(base), start
    for p in params:
        copy = p._bf16
        if not (isinstance(copy, np.ndarray) and copy.base is base and copy.shape == p.shape
                and copy.flags.c_contiguous and _address(copy) == origin + offset * 4):
            return None
        offset += p.size
    return base[start:stop]


def _address(array):
    return array.__array_interface__["data"][0]


class _FlatGroup:
    """A parameter group updated as one flat Parameter (see Optimizer). Falsy when the group's
    parameters are not laid out in one flat array, or their states differ in what they hold;
    either way it remembers the arrays it looked at, so that it is built again only when they
    change."""

    def __init__(self, params, flat=None, state=None):
        self.params, self.flat, self.state = list(params), flat, state
        self.views = [(p._data, p._grad, p._bf16) for p in params]
        self.counters, self.param_states = [], []

    def __bool__(self):
        return self.flat is not None

    @classmethod
    def build(cls, params, all_state):
        if not params:
            return cls(params)
        run = flat_run(params)
        if run is None:
            return cls(params)
        storage, start, stop = run
        data, grad = storage.data[start:stop], storage.grad[start:stop]
        states = [all_state.get(p, {}) for p in params]
        keys = set(states[0])
        if any(set(s) != keys for s in states) or any(
                not isinstance(s[k], np.ndarray) and s[k] != states[0][k]
                for s in states for k in keys):
            return cls(params)
        flat = Parameter(data, "flat", grad=grad)
        flat._bf16 = _flat_copy(params, storage, start, stop)
        state = {k: (np.concatenate([s[k].ravel() for s in states]).astype(data.dtype)
                     if isinstance(states[0][k], np.ndarray) else states[0][k]) for k in keys}
        group = cls(params, flat, state)
        group.share_arrays(all_state)
        return group

    def still_valid(self, params):
        """Whether the group holds the same parameters, still views of the same flat arrays (and
        the same bf16 copies: a model's compute_dtype may change)."""
        return params == self.params and all(
            p._data is d and p._grad is g and p._bf16 is c
            for p, (d, g, c) in zip(params, self.views))

    def update(self, optimizer, hyperparameters):
        if any(map(_grad_cleared, self.params)):
            for p in self.params:
                if p._grad_is_zero:  # its gradient was cleared and not since computed
                    p.grad
        entries = len(self.state)
        optimizer._update(self.flat, hyperparameters, self.state)
        fresh = optimizer._bf16_copy(self.flat) is not None  # (the update wrote their copies)
        for p in self.params:
            p._bf16_fresh = fresh
        if len(self.state) != entries:  # the first step created the state
            self.share_arrays(optimizer.state)
        else:
            for key in self.counters:
                value = self.state[key]
                for state in self.param_states:
                    state[key] = value

    def share_arrays(self, all_state):
        """Give each parameter state entries that are views of its part of the flat state
        arrays, and copies of the counters (Adam's step)."""
        self.counters = [k for k, v in self.state.items() if not isinstance(v, np.ndarray)]
        self.param_states = [all_state.setdefault(p, {}) for p in self.params]
        offset = 0
        for p, state in zip(self.params, self.param_states):
            part = slice(offset, offset + p.size)
            for key, value in self.state.items():
                state[key] = value[part].reshape(p.shape) if isinstance(value, np.ndarray) \
                    else value
            offset += p.size


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and weight decay.

    Same formulas and defaults as torch.optim.SGD:
        g = grad + weight_decay * p
        buf = g (first step) or momentum * buf + (1 - dampening) * g
        g = g + momentum * buf (nesterov) or buf (momentum) or g (no momentum)
        p -= lr * g
    """

    _update_writes_bf16 = True  # (its kernel call passes bf16_copy)

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _check_group(self, group):
        for key in ("lr", "momentum", "dampening", "weight_decay"):
            self._check_range("SGD", key, group[key])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("SGD: Nesterov momentum requires momentum > 0 and dampening = 0")

    def _update(self, p, group, state):
        momentum = group["momentum"]
        first_step = False
        buf = None
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.empty_like(p.data)
                first_step = True
        _backend.kernels.sgd_update(
            p.data, p.grad, buf, lr=group["lr"], momentum=momentum,
            dampening=group["dampening"], nesterov=group["nesterov"],
            weight_decay=group["weight_decay"], first_step=first_step,
            bf16_copy=self._bf16_copy(p))


def _zeros_state(state, p, *names):
    for name in names:
        if name not in state:
            state[name] = np.zeros_like(p.data)


class Adagrad(Optimizer):
    """Adagrad, as torch.optim.Adagrad: per-coordinate learning rates from the sum of squared
    gradients. param -= lr / (1 + (t - 1) * lr_decay) * g / (sqrt(sum g^2) + eps)."""

    _update_writes_bf16 = True  # (its kernel call passes bf16_copy)

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps))

    def _check_group(self, group):
        for key in ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            self._check_range("Adagrad", key, group[key])

    def _update(self, p, group, state):
        if "sum" not in state:
            state["step"] = 0
            state["sum"] = np.full_like(p.data, group["initial_accumulator_value"])
        state["step"] += 1
        _backend.kernels.adagrad_update(
            p.data, p.grad, state["sum"], lr=group["lr"], lr_decay=group["lr_decay"],
            weight_decay=group["weight_decay"], eps=group["eps"], step=state["step"],
            bf16_copy=self._bf16_copy(p))


class RMSprop(Optimizer):
    """RMSprop, as torch.optim.RMSprop: a leaky average of squared gradients (decay `alpha`)
    normalizes the step; optional momentum and centering (subtract the mean gradient)."""

    _update_writes_bf16 = True  # (its kernel call passes bf16_copy)

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))

    def _check_group(self, group):
        for key in ("lr", "eps", "weight_decay", "momentum", "alpha"):
            self._check_range("RMSprop", key, group[key])

    def _update(self, p, group, state):
        state["step"] = state.get("step", 0) + 1
        _zeros_state(state, p, "square_avg")
        if group["centered"]:
            _zeros_state(state, p, "grad_avg")
        if group["momentum"] > 0:
            _zeros_state(state, p, "momentum_buffer")
        _backend.kernels.rmsprop_update(
            p.data, p.grad, state["square_avg"], state.get("grad_avg"),
            state.get("momentum_buffer"), lr=group["lr"], alpha=group["alpha"], eps=group["eps"],
            weight_decay=group["weight_decay"], momentum=group["momentum"],
            centered=group["centered"], bf16_copy=self._bf16_copy(p))


class Adam(Optimizer):
    """Adam, as torch.optim.Adam: bias-corrected first and second moment estimates,
    param -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps); weight_decay adds
    weight_decay * param to the gradient (L2). `amsgrad` uses the running maximum of v."""

    _update_writes_bf16 = True  # (its kernel call passes bf16_copy)
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad))

    def _check_group(self, group):
        name = type(self).__name__
        for key in ("lr", "eps", "weight_decay"):
            self._check_range(name, key, group[key])
        if len(group["betas"]) != 2:
            raise ValueError(f"{name}: betas must be a pair, got {group['betas']!r}")
        for i, beta in enumerate(group["betas"]):
            self._check_range(name, f"beta parameter at index {i}", beta, 0.0, 1.0,
                              high_open=True)

    def _update(self, p, group, state):
        state["step"] = state.get("step", 0) + 1
        _zeros_state(state, p, "exp_avg", "exp_avg_sq")
        if group["amsgrad"]:
            _zeros_state(state, p, "max_exp_avg_sq")
        beta1, beta2 = group["betas"]
        _backend.kernels.adam_update(
            p.data, p.grad, state["exp_avg"], state["exp_avg_sq"], state.get("max_exp_avg_sq"),
            lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
            weight_decay=group["weight_decay"], step=state["step"],
            decoupled_weight_decay=self._decoupled, amsgrad=group["amsgrad"],
            bf16_copy=self._bf16_copy(p))


class AdamW(Adam):
    """AdamW, as torch.optim.AdamW: Adam with decoupled weight decay,
    param *= 1 - lr * weight_decay before the Adam step (default weight_decay 1e-2)."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad)
