"""Checking and rebuilding what a fastnn file describes: the metadata's structure and types, the
arrays it declares against the entries' headers, then the model, optimizer and extra, their
values checked (the zip level is _archive.py's)."""
import contextlib
import math
from collections import namedtuple

import numpy as np

from . import init
from ._archive import CHUNK, _Archive
from ._mixed import COMPUTE_DTYPES
from ._save import ARRAY_REF, METADATA, OPTIMIZERS
from .layers import LAYERS, Parameter, as_dtype
from .model import Sequential

Checkpoint = namedtuple("Checkpoint", ["model", "optimizer", "extra"])
Checkpoint.__doc__ = """What load_checkpoint returns: the model, the optimizer bound to the model's
parameters (None if none was saved) and the `extra` dict (None if none was saved)."""

# Optimizer state entries a file may hold, per optimizer (every option on); "step" is an integer
# count, the others arrays of the parameter's shape, those below sums or averages of squares.
OPTIMIZER_STATE = {"SGD": {"momentum_buffer"}, "Adagrad": {"step", "sum"},
                   "RMSprop": {"step", "square_avg", "grad_avg", "momentum_buffer"},
                   "Adam": {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
                   "AdamW": {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}}
_NONNEGATIVE_STATE = {"sum", "square_avg", "exp_avg_sq", "max_exp_avg_sq"}
_NONNEGATIVE_BUFFERS = {"running_var"}


class _Reader(_Archive):
    """One fastnn file opened for reading. Opening checks everything that can be checked without
    reading the arrays: the zip entries against their .npy headers, the metadata's structure and
    types, and every array the metadata declares against its entry's header, so that nothing is
    allocated for a lying file; reading an entry then decompresses exactly its declared bytes and
    checks its values. Every failure is a ValueError naming the file."""

    def _check_metadata(self):
        """Types and values of everything the metadata holds."""
        m = self.metadata
        if m.get("dtype") not in ("float32", "float64"):
            raise self.invalid("metadata 'dtype'", m.get("dtype"), "'float32' or 'float64'")
        compute = m.get("compute_dtype", "float32")  # (files written before it: float32)
        if not isinstance(compute, str) or compute not in COMPUTE_DTYPES:
            raise self.invalid("metadata 'compute_dtype'", compute,
                               " or ".join(map(repr, COMPUTE_DTYPES)))
        if compute == "bfloat16" and m["dtype"] != "float32":
            raise self.error(f"invalid metadata 'compute_dtype': 'bfloat16' needs float32 "
                             f"parameters, the file declares dtype {m['dtype']!r}")
        seed = m.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise self.invalid("metadata 'seed'", seed, "null or a non-negative integer")
        if not isinstance(m.get("training"), bool):
            raise self.invalid("metadata 'training'", m.get("training"), "true or false")
        layers = m.get("layers")
        if not isinstance(layers, list) or not layers:
            raise self.invalid("metadata 'layers'", layers, "a non-empty list of layers")
        for i, spec in enumerate(layers):
            if not isinstance(spec, dict):
                raise self.invalid(f"layer {i}", spec, "an object with type, config and state")
            if not isinstance(spec.get("type"), str):
                raise self.invalid(f"layer {i} 'type'", spec.get("type"), "a layer type name")
            if spec["type"] not in LAYERS:
                raise self.error(f"layer {i} has unknown type {spec['type']!r}; this fastnn "
                                 f"knows {sorted(LAYERS)}")
            for key in ("config", "state"):
                if not isinstance(spec.get(key), dict):
                    raise self.invalid(f"layer {i} {key!r}", spec.get(key), "an object")
            frozen = spec.get("frozen", [])
            if not isinstance(frozen, list) or not all(isinstance(name, str) for name in frozen):
                raise self.invalid(f"layer {i} 'frozen'", frozen, "a list of parameter names")
        for key in ("optimizer", "extra"):
            if m.get(key) is not None and not isinstance(m[key], dict):
                raise self.invalid(f"metadata {key!r}", m[key], "null or an object")
        if m.get("optimizer") is not None:
            self._check_optimizer_metadata(m["optimizer"])

    def _check_optimizer_metadata(self, spec):
        unknown = set(spec) - {"type", "defaults", "param_groups", "state"}
        if unknown:
            raise self.error(f"invalid optimizer: unknown keys {sorted(unknown)}; expected "
                             "type, defaults, param_groups and state")
        if not isinstance(spec.get("type"), str) or spec["type"] not in OPTIMIZERS:
            raise self.error(f"unknown optimizer type {spec.get('type')!r}; this fastnn knows "
                             f"{sorted(OPTIMIZERS)}")
        name = spec["type"]
        reference = OPTIMIZERS[name]([Parameter(np.zeros(1), "probe")]).defaults
        groups = spec.get("param_groups")
        if not isinstance(groups, list) or not groups:
            raise self.invalid("optimizer 'param_groups'", groups, "a non-empty list")
        for where, group in [("optimizer 'defaults'", spec.get("defaults"))] + [
                (f"optimizer param group {k}", g) for k, g in enumerate(groups)]:
            if not isinstance(group, dict):
                raise self.invalid(where, group, "an object")
            for key, value in group.items():
                if key == "params" and where != "optimizer 'defaults'":
                    if not isinstance(value, list) or not all(
                            isinstance(j, int) and not isinstance(j, bool) for j in value):
                        raise self.invalid(f"{where} 'params'", value,
                                           "a list of parameter indices")
                    continue
                # a learning-rate schedule records the group's initial_lr, as PyTorch's do
                known = reference if where == "optimizer 'defaults'" else {**reference,
                                                                           "initial_lr": 0.0}
                if key not in known:
                    raise self.error(f"invalid {where}: unknown hyperparameter {key!r}; {name} "
                                     f"takes {sorted(known)}")
                self._check_hyperparameter(f"{where} {key!r}", value, known[key])
        state = spec.get("state")
        if not isinstance(state, dict):
            raise self.invalid("optimizer 'state'", state, "an object")
        allowed = OPTIMIZER_STATE[name]
        for j, entry in state.items():
            if not j.isdigit():
                raise self.invalid("optimizer state key", j, "a parameter index")
            if not isinstance(entry, dict):
                raise self.invalid(f"optimizer state of parameter {j}", entry, "an object")
            for key, value in entry.items():
                where = f"optimizer state {key!r} of parameter {j}"
                if key not in allowed:
                    raise self.error(f"invalid optimizer state: unknown entry {key!r} for "
                                     f"parameter {j}; {name} keeps {sorted(allowed)}")
                if key == "step":
                    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                        raise self.invalid(where, value, "a non-negative integer step count")
                elif not _is_ref(value):
                    raise self.invalid(where, value, "an array entry")

    def _check_hyperparameter(self, where, value, default):
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise self.invalid(where, value, "true or false")
        elif isinstance(default, (int, float)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not \
                    math.isfinite(value):
                raise self.invalid(where, value, "a finite number")
        elif isinstance(default, tuple):
            if not isinstance(value, list) or len(value) != len(default) or any(
                    isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                    for v in value):
                raise self.invalid(where, value, f"a list of {len(default)} finite numbers")

    def _declared_arrays(self):
        """{entry name: shape} of the model's arrays from the layer configs alone, and the
        parameters' shapes in model.parameters() order."""
        arrays, parameters = {}, []
        for i, spec in enumerate(self.metadata["layers"]):
            params, buffers = LAYERS[spec["type"]].declared_arrays(
                spec["config"], lambda key, value, accepts, i=i, t=spec["type"]:
                self.invalid(f"layer {i} ({t}) config {key!r}", value, accepts))
            for name, shape in params + buffers:
                arrays[f"model/{i}.{name}"] = shape
            parameters.extend(shape for _, shape in params)
        return arrays, parameters

    def _check_entries(self):
        """The entries must be exactly the ones the metadata refers to, each of the shape and
        dtype the metadata implies."""
        declared, parameters = self._declared_arrays()
        expected = {METADATA} | set(declared)
        optimizer = self.metadata.get("optimizer")
        references = {}
        if optimizer is not None:
            grouped = set()
            for g in optimizer["param_groups"]:
                indices = g["params"]
                if any(not 0 <= j < len(parameters) for j in indices):
                    raise self.error(f"optimizer parameter indices {indices} out of range for a "
                                     f"model with {len(parameters)} parameters")
                if len(set(indices)) < len(indices) or grouped & set(indices):
                    raise self.error(f"optimizer parameter indices {indices}: a parameter "
                                     "listed twice")
                grouped |= set(indices)
            for j, entry in optimizer["state"].items():
                if int(j) not in grouped:
                    raise self.error(f"optimizer state for parameter {j}, which no parameter "
                                     "group holds")
                for value in entry.values():
                    if _is_ref(value):
                        references[value[ARRAY_REF]] = parameters[int(j)]
            expected |= set(references)
        extra = set(_references(self.metadata.get("extra")))
        expected |= extra
        missing, unexpected = expected - set(self.headers), set(self.headers) - expected
        if missing or unexpected:
            raise self.error(f"the arrays do not match the metadata: missing {sorted(missing)}, "
                             f"unexpected {sorted(unexpected)}")
        dtype = np.dtype(self.metadata["dtype"])
        for name, shape in {**declared, **references}.items():
            self._check_header(name, shape, dtype)
        self.declared = declared

    def _check_header(self, name, shape, dtype):
        saved = self.headers[name]
        if saved.shape != tuple(shape) or saved.dtype.name != dtype.name:
            raise self.error(f"array {name!r} has shape {saved.shape} and dtype {saved.dtype}, "
                             f"expected shape {tuple(shape)} and dtype {dtype}")

    # -- building and reading, once everything above holds

    def _architecture(self):
        """Build the model the metadata describes, its parameters uninitialized
        (fastnn.init.deferred: model() reads every one of them from the file)."""
        layers = []
        for i, spec in enumerate(self.metadata["layers"]):
            try:
                with init.deferred():
                    layers.append(LAYERS[spec["type"]](**spec["config"]))
            except (TypeError, ValueError) as error:
                raise self.error(f"layer {i} ({spec['type']}): cannot rebuild it from its config "
                                 f"{spec['config']!r}: {error}") from error
        with init.deferred():
            model = Sequential(*layers, dtype=as_dtype(self.metadata["dtype"]),
                               seed=self.metadata["seed"],
                               compute_dtype=self.metadata.get("compute_dtype", "float32"))
        for i, (layer, spec) in enumerate(zip(model.layers, self.metadata["layers"])):
            self._check_layer_values(i, layer, spec)
            layer.set_extra_state(spec["state"])
            params = {p.name: p for p in layer.parameters()}
            if not set(spec.get("frozen", [])) <= set(params):
                raise self.invalid(f"layer {i} ({spec['type']}) 'frozen'", spec["frozen"],
                                   f"a list of some of its parameters {sorted(params)}")
            for name in spec.get("frozen", []):
                params[name].requires_grad = False
        model.train(self.metadata["training"])
        self._model = model
        self.model_keys = {f"model/{key}": array for key, array in model._state_arrays().items()}
        built = {name: array.shape for name, array in self.model_keys.items()}
        if built != self.declared:
            raise self.error(f"the model built from the metadata holds arrays {built}, not the "
                             f"{self.declared} its layer configs declare")

    def _check_layer_values(self, i, layer, spec):
        """Every config and state value of the kind the rebuilt layer itself reports (a float
        where it holds a float, a boolean where a flag), and counts non-negative."""
        where = f"layer {i} ({spec['type']})"
        config = layer.config()
        for key, value in spec["config"].items():
            if value is not None and config.get(key) is not None and \
                    _kind(value) != _kind(config[key]):
                raise self.invalid(f"{where} config {key!r}", value, _kind(config[key]))
        state = layer.get_extra_state()
        for key, value in spec["state"].items():
            if key not in state:
                raise self.error(f"invalid {where} state: unknown entry {key!r}; the layer "
                                 f"keeps {sorted(state)}")
            if _kind(value) != _kind(state[key]) or (_kind(value) == "a number" and value < 0):
                raise self.invalid(f"{where} state {key!r}", value,
                                   "a non-negative integer" if _kind(state[key]) == "a number"
                                   else _kind(state[key]))

    def _checked(self, name, array, nonnegative=False):
        """`array` (entry `name`, just read) if its values are finite (and >= 0 when asked)."""
        flat = array.reshape(-1)
        for start in range(0, flat.size, CHUNK):
            part = flat[start:start + CHUNK]
            if not np.isfinite(part).all():
                raise self.error(f"entry {name!r} holds NaN or infinite values; it must hold "
                                 "finite numbers")
            if nonnegative and (part < 0).any():
                raise self.error(f"entry {name!r} holds negative values; it must hold numbers "
                                 ">= 0 (it is a variance or an average of squares)")
        return array

    def model(self):
        for name, target in self.model_keys.items():
            self._checked(name, self._read(name, out=target),
                          nonnegative=name.rsplit(".", 1)[1] in _NONNEGATIVE_BUFFERS)
        return self._model

    def optimizer(self, model):
        spec = self.metadata.get("optimizer")
        if spec is None:
            return None
        with self._malformed():
            cls = OPTIMIZERS[spec["type"]]
            params = model.parameters()
            groups, flat = [], {}
            for g in spec["param_groups"]:
                indices = g["params"]  # checked in _check_entries
                for j in indices:
                    flat[j] = len(flat)
                groups.append({**_hyperparameters(g), "params": [params[j] for j in indices]})
            optimizer = cls(groups, **_hyperparameters(spec["defaults"]))
            state = {}
            for j, entry in spec["state"].items():
                state[flat[int(j)]] = {
                    key: (self._checked(value[ARRAY_REF], self._read(value[ARRAY_REF]),
                                        nonnegative=key in _NONNEGATIVE_STATE)
                          if _is_ref(value) else value) for key, value in entry.items()}
            saved = optimizer.state_dict()
            optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
        return optimizer

    def extra(self):
        extra = self.metadata.get("extra")
        with self._malformed():
            return _from_json(extra, self._read)

    @contextlib.contextmanager
    def _malformed(self):
        try:
            yield
        except (KeyError, TypeError, AttributeError, IndexError, RecursionError) as error:
            raise self.error(f"malformed metadata ({type(error).__name__}: {error})") from error
        except ValueError as error:
            if str(error).startswith(self.path + ": "):
                raise
            raise self.error(f"malformed metadata ({error})") from error


def _kind(value):
    """What JSON kind of value this is, as an error message says what a setting accepts."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else "null"


def _is_ref(value):
    return isinstance(value, dict) and set(value) == {ARRAY_REF} and isinstance(value[ARRAY_REF],
                                                                                str)


def _references(value):
    if _is_ref(value):
        yield value[ARRAY_REF]
    elif isinstance(value, dict):
        for v in value.values():
            yield from _references(v)
    elif isinstance(value, list):
        for v in value:
            yield from _references(v)


def _from_json(value, array):
    if _is_ref(value):
        return array(value[ARRAY_REF])
    if isinstance(value, dict):
        return {k: _from_json(v, array) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v, array) for v in value]
    return value


def _hyperparameters(group):
    """A saved group's hyperparameters; JSON lists back to tuples (betas)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in group.items() if k != "params"}
