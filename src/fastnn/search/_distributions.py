"""The search space's distributions: log_uniform, uniform, int_uniform, choice (scipy.stats'
protocol, so scikit-learn's searches take them too), and how a space's values are drawn.
NumPy only."""
import math
import numbers

import numpy as np


def _generator(random_state):
    """A NumPy Generator or RandomState to draw from (scipy's and sklearn's conventions)."""
    if isinstance(random_state, (np.random.Generator, np.random.RandomState)):
        return random_state
    return np.random.default_rng(random_state)


def _uniform01(random_state, size):
    # Generator and RandomState both have .random(); every distribution draws only through it,
    # so a distribution gives the same values under either.
    return _generator(random_state).random(size)


def _check_range(name, low, high, positive=False, integer=False):
    for label, value in (("low", low), ("high", high)):
        kind = numbers.Integral if integer else numbers.Real
        if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
            raise TypeError(f"{name}: {label} must be a finite {'integer' if integer else 'number'}"
                            f", got {value!r}")
        if positive and value <= 0:
            raise ValueError(f"{name}: {label} must be > 0 on a log scale, got {value!r}")
    if low > high:
        raise ValueError(f"{name}: low must be <= high, got low={low!r}, high={high!r}")


class _Distribution:
    """scipy.stats' protocol: rvs(size=None, random_state=None); sklearn's searches accept it."""
    log = False

    def rvs(self, size=None, random_state=None):
        values = self._from_uniform(np.asarray(_uniform01(random_state, size)))
        return values.item() if size is None else values

    def __eq__(self, other):
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self):
        return hash((type(self), repr(self)))


class LogUniform(_Distribution):
    """Uniform in log(value) between low and high: learning rates, regularization strengths."""
    __module__ = "fastnn.search"  # its public home: pickles and reprs name it
    log = True

    def __init__(self, low, high):
        _check_range("log_uniform", low, high, positive=True)
        self.low, self.high = float(low), float(high)

    def _from_uniform(self, u):
        log_low, log_high = math.log(self.low), math.log(self.high)
        return np.clip(np.exp(log_low + u * (log_high - log_low)), self.low, self.high)

    def refine(self, values):
        return LogUniform(min(values), max(values))

    def __repr__(self):
        return f"log_uniform({self.low!r}, {self.high!r})"


class Uniform(_Distribution):
    """Uniform between low and high (dropout probability, momentum)."""
    __module__ = "fastnn.search"  # its public home: pickles and reprs name it

    def __init__(self, low, high):
        _check_range("uniform", low, high)
        self.low, self.high = float(low), float(high)

    def _from_uniform(self, u):
        return self.low + u * (self.high - self.low)

    def refine(self, values):
        return Uniform(min(values), max(values))

    def __repr__(self):
        return f"uniform({self.low!r}, {self.high!r})"


class IntUniform(_Distribution):
    """An integer in [low, high], both included; log=True samples log(value) uniformly."""
    __module__ = "fastnn.search"  # its public home: pickles and reprs name it

    def __init__(self, low, high, log=False):
        _check_range("int_uniform", low, high, positive=log, integer=True)
        if not isinstance(log, bool):
            raise TypeError(f"int_uniform: log must be True or False, got {log!r}")
        self.low, self.high, self.log = int(low), int(high), log

    def _from_uniform(self, u):
        if self.log:
            # Uniform in log over [low, high + 1), floored: each integer gets its log-width.
            log_low, log_high = math.log(self.low), math.log(self.high + 1)
            values = np.floor(np.exp(log_low + u * (log_high - log_low)))
        else:
            values = np.floor(self.low + u * (self.high - self.low + 1))
        return np.clip(values, self.low, self.high).astype(np.int64)

    def refine(self, values):
        return IntUniform(int(min(values)), int(max(values)), log=self.log)

    def __repr__(self):
        log = ", log=True" if self.log else ""
        return f"int_uniform({self.low!r}, {self.high!r}{log})"


class Choice(_Distribution):
    """One of the given options, each equally likely (activations, layer sizes, optimizers)."""
    __module__ = "fastnn.search"  # its public home: pickles and reprs name it

    def __init__(self, options):
        if isinstance(options, (str, bytes)) or not hasattr(options, "__len__"):
            raise TypeError(f"choice: options must be a list or tuple of values, got {options!r}")
        if len(options) == 0:
            raise ValueError("choice: options must not be empty")
        self.options = list(options)

    def rvs(self, size=None, random_state=None):
        u = np.asarray(_uniform01(random_state, size))
        index = np.minimum((u * len(self.options)).astype(np.int64), len(self.options) - 1)
        if size is None:
            return self.options[int(index)]
        return [self.options[i] for i in index.ravel()]

    def refine(self, values):
        return Choice([o for o in self.options if any(same(o, v) for v in values)])

    def __repr__(self):
        return f"choice({self.options!r})"


def log_uniform(low, high):
    """Values whose logarithm is uniform in [log low, log high] (0 < low <= high)."""
    return LogUniform(low, high)


def uniform(low, high):
    """Values uniform in [low, high]."""
    return Uniform(low, high)


def int_uniform(low, high, log=False):
    """Integers uniform in [low, high], both ends included (log=True: uniform in log)."""
    return IntUniform(low, high, log=log)


def choice(options):
    """One of `options`, each equally likely."""
    return Choice(options)


def same(a, b):
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # arrays compare elementwise
        return a is b


def unique(values):
    """The distinct values, in the order met (compared with ==: options may be unhashable)."""
    found = []
    for v in values:
        if not any(same(v, u) for u in found):
            found.append(v)
    return found


def as_distribution(name, value):
    if hasattr(value, "rvs"):
        return value
    if isinstance(value, (list, tuple)):
        return Choice(value)  # sklearn's convention: a list is sampled uniformly
    raise TypeError(f"random_search: space[{name!r}] must be a distribution (log_uniform, uniform, "
                    f"int_uniform, choice, a scipy.stats distribution: anything with rvs) or a "
                    f"list of options, got {value!r}")


def is_log_scaled(distribution):
    """True for log_uniform, int_uniform(log=True) and scipy.stats' loguniform/reciprocal."""
    if getattr(distribution, "log", False) is True:
        return True
    dist = getattr(distribution, "dist", None)
    return getattr(dist, "name", None) in ("loguniform", "reciprocal")


def _plain(value):
    """NumPy scalars as Python numbers, so rows compare, print and serialize plainly."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def draw_params(space, rng):
    # Sorted names: the draw order (so the trials) does not depend on the dict's order.
    return {name: _plain(space[name].rvs(random_state=rng)) for name in sorted(space)}
