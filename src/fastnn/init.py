"""Weight initializers: `initialize(init, (fan_in, fan_out), rng, dtype)`.

`init` is one of:
- a float s: small random weights s * randn (the CS231n notes' 0.01 * randn);
- a name:
    "small"                              0.01 * randn
    "xavier", "xavier_normal"            normal, Var = 1 / fan_in (the notes' calibration)
    "xavier_uniform"                     uniform on +-sqrt(3 / fan_in), Var = 1 / fan_in
    "glorot", "glorot_normal"            normal, Var = 2 / (fan_in + fan_out) (Glorot & Bengio)
    "glorot_uniform"                     uniform on +-sqrt(6 / (fan_in + fan_out))
    "he", "kaiming", "he_normal",        normal, std = sqrt(2 / fan_in) (He et al., for ReLU)
    "kaiming_normal"
    "he_uniform", "kaiming_uniform"      uniform on +-sqrt(6 / fan_in)
    "zeros"                              all zero
- `constant(value)`: every weight equal to value;
- any callable f(shape, rng) returning an array of that shape.
Weights that are all equal (zeros, constant) make every unit of a layer compute the same thing and
receive the same gradient, so symmetry is never broken: `initialize` warns about that.
"""
import contextlib
import numbers
import threading
import warnings

import numpy as np

from ._validation import check_float


class _Random:
    """Random weights: float64 draws (standard normal, or uniform on [-1, 1)) times
    scale(fan_in, fan_out). Called as init(shape, rng) like any initializer; `initialize` has it
    fill the weights in blocks of rows instead, which draws the same numbers without a float64
    copy of the whole array (a 3072 x 1024 layer would need 25 MB for it)."""

    BLOCK = 1 << 16  # values drawn at a time

    def __init__(self, uniform, scale):
        self.uniform, self.scale = uniform, scale

    def draw(self, shape, rng):
        return rng.uniform(-1.0, 1.0, shape) if self.uniform else rng.standard_normal(shape)

    def __call__(self, shape, rng):
        return self.draw(shape, rng) * self.scale(*shape)

    def fill(self, out, rng):
        scale = self.scale(*out.shape)
        rows = max(1, self.BLOCK // max(1, out[0].size))
        for start in range(0, out.shape[0], rows):
            block = out[start:start + rows]
            block[...] = self.draw(block.shape, rng) * scale


def _normal(std):
    return _Random(False, std)


def _uniform(limit):
    return _Random(True, limit)


def constant(value):
    """An initializer that sets every weight to `value` (warns about symmetry when used)."""
    value = check_float("constant: value", value)

    def init(shape, rng):
        return np.full(shape, value)

    init.__name__ = f"constant({value})"
    return init


INITIALIZERS = {
    "small": _normal(lambda fan_in, fan_out: 0.01),
    "xavier": _normal(lambda fan_in, fan_out: np.sqrt(1.0 / fan_in)),
    "xavier_uniform": _uniform(lambda fan_in, fan_out: np.sqrt(3.0 / fan_in)),
    "glorot": _normal(lambda fan_in, fan_out: np.sqrt(2.0 / (fan_in + fan_out))),
    "glorot_uniform": _uniform(lambda fan_in, fan_out: np.sqrt(6.0 / (fan_in + fan_out))),
    "he": _normal(lambda fan_in, fan_out: np.sqrt(2.0 / fan_in)),
    "he_uniform": _uniform(lambda fan_in, fan_out: np.sqrt(6.0 / fan_in)),
    "zeros": lambda shape, rng: np.zeros(shape),
}
ALIASES = {"xavier_normal": "xavier", "glorot_normal": "glorot", "kaiming": "he",
           "he_normal": "he", "kaiming_normal": "he", "kaiming_uniform": "he_uniform"}


def default_init(activation):
    from ._activations import SPECS
    spec = SPECS.get(activation) if isinstance(activation, str) else None
    return spec.init if spec is not None else "xavier"


def _resolve(init):
    if isinstance(init, numbers.Real) and not isinstance(init, bool):
        if not np.isfinite(init) or init < 0:
            raise ValueError(f"init scale must be a finite number >= 0, got {init}")
        scale = float(init)
        return _Random(False, lambda *shape: scale)
    if callable(init):
        return init
    if isinstance(init, str) and ALIASES.get(init, init) in INITIALIZERS:
        return INITIALIZERS[ALIASES.get(init, init)]
    raise ValueError(f"unknown init {init!r}; expected a float scale, a callable, or one of "
                     f"{sorted(set(INITIALIZERS) | set(ALIASES))}")


def check_init(init):
    """Raise a clear error for an init that `initialize` would not accept."""
    _resolve(init)


_deferred = threading.local()


@contextlib.contextmanager
def deferred():
    """Within the block (in this thread only), `initialize` returns uninitialized arrays: for
    building a model whose every parameter is about to be overwritten (fastnn.load), without
    drawing numbers or touching the memory they occupy."""
    previous = getattr(_deferred, "active", False)
    _deferred.active = True
    try:
        yield
    finally:
        _deferred.active = previous


def initialize(init, shape, rng, dtype, where="layer"):
    draw = _resolve(init)
    if getattr(_deferred, "active", False):
        return np.empty(shape, dtype=dtype)
    if isinstance(draw, _Random) and len(shape) >= 1:
        values = np.empty(shape, dtype=dtype)
        draw.fill(values, rng)
    else:
        values = draw(shape, rng)
        try:
            values = np.asarray(values, dtype=dtype)
        except (TypeError, ValueError):
            raise TypeError(f"{where}: init {init!r} returned {type(values).__name__}, not an "
                            f"array of real numbers of shape {tuple(shape)}") from None
    if values.shape != tuple(shape):
        raise ValueError(f"{where}: init {init!r} returned shape {values.shape}, expected "
                         f"{tuple(shape)}")
    if not np.isfinite(values).all():
        raise ValueError(f"{where}: init {init!r} gave NaN or inf weights (in {dtype}); an "
                         "init must give finite numbers")
    if values.size > 1 and shape[-1] > 1 and np.all(values == values.flat[0]):
        name = init.__name__ if callable(init) and hasattr(init, "__name__") else repr(init)
        warnings.warn(f"{where}: init {name} makes every weight equal, so all units of the "
                      "layer compute the same output and get the same gradient: symmetry is never "
                      "broken. Use small random weights (e.g. 'he' or 'xavier') instead.",
                      UserWarning, stacklevel=3)
    return np.ascontiguousarray(values)
