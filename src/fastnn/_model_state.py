"""A Sequential's arrays: every parameter in one flat data array and one flat gradient array
(each Parameter a view of its part), and the state dict: the parameters and buffers keyed
"<layer index>.<name>", copied out and checked on the way back in."""
from collections import namedtuple

import numpy as np

from .layers import FlatPlace, FlatStorage, flat_run

LoadResult = namedtuple("LoadResult", "missing_keys unexpected_keys mismatched_keys")


def flatten_parameters(params, dtype):
    """Move every parameter's data and gradient into one FlatStorage, in `params` order, leaving
    each Parameter a view of its part and recording its FlatPlace (so that an optimizer updates
    the whole model in one kernel call, see fastnn.optim.Optimizer.step); returns the flat
    (data, grad), or None without parameters."""
    if not params:
        return None
    run = flat_run(params)
    if run is not None:
        storage, start, stop = run
        if start == 0 and stop == storage.data.size and storage.data.dtype == dtype:
            return storage.data, storage.grad  # already so (the layers of another Sequential)
    total = sum(p.size for p in params)
    for p in params:  # fresh, all zero: dropped first, so that the model is never held twice
        p._grad = None
    storage = FlatStorage(np.empty(total, dtype), np.zeros(total, dtype))
    offset = 0
    for p in params:
        stop = offset + p.size
        data = storage.data[offset:stop]
        data[...] = p.data.ravel()
        p._data = data.reshape(p.shape)
        p._grad = storage.grad[offset:stop].reshape(p.shape)
        p._place = FlatPlace(storage, offset, stop, p._data, p._grad)
        offset = stop
    return storage.data, storage.grad


def state_arrays(layers):
    """Every parameter array and buffer (running statistics), keyed "<layer index>.<name>"."""
    state = {}
    for i, layer in enumerate(layers):
        state.update((f"{i}.{p.name}", p.data) for p in layer.parameters())
        state.update((f"{i}.{name}", array) for name, array in layer.buffers().items())
    return state


def load_state(expected, state, strict):
    """Sequential.load_state_dict: copy `state` into the arrays `expected` (state_arrays'
    result), all checked before the first is copied; returns the LoadResult."""
    if not isinstance(strict, (bool, np.bool_)):
        raise TypeError(f"load_state_dict: strict must be True or False, got {strict!r}")
    if not hasattr(state, "keys"):
        raise TypeError(f"load_state_dict: state must be a dict of arrays (from "
                        f"state_dict()), got {type(state).__name__}")
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    values = {key: np.asarray(state[key]) for key in expected if key in state}
    mismatched = sorted(key for key, value in values.items()
                        if value.shape != expected[key].shape)
    if strict and (missing or unexpected):
        raise ValueError(f"load_state_dict: missing keys {missing}, unexpected keys "
                         f"{unexpected}")
    if strict and mismatched:
        key = mismatched[0]
        raise ValueError(f"load_state_dict: {key} has shape {values[key].shape}, the model "
                         f"expects {expected[key].shape}")
    for key, value in values.items():
        if key not in mismatched:
            expected[key][...] = value
    return LoadResult(missing, unexpected, mismatched)
