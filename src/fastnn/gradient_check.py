"""Numerical gradients by centered differences, for checking backward passes (in float64).

Like the CS231n checker, the function's output is contracted with an upstream gradient `df`, so
f may return an array: the checked quantity is sum(f(x) * df).
"""
import numpy as np

from ._validation import check_float, check_int
from .layers import fused_activations


def numerical_gradient(f, x, df=None, h=1e-6, coords=None):
    """d sum(f(x) * df) / dx by centered differences.

    x is perturbed in place (and restored), so f must read it on each call. coords, if given, is a
    sequence of flat indices to check; the other entries of the result are NaN. Returns an array
    shaped like x.
    """
    if x.dtype != np.float64:
        raise TypeError(f"numerical_gradient: use float64 for gradient checks, got {x.dtype}")
    flat = x.reshape(-1)
    if not np.shares_memory(flat, x):
        raise ValueError("numerical_gradient: x must be contiguous so it can be perturbed in place")
    grad = np.full(x.size, np.nan) if coords is not None else np.empty(x.size)
    indices = range(x.size) if coords is None else coords

    def value():
        out = np.asarray(f(x), dtype=np.float64)
        return float(np.sum(out if df is None else out * df))

    for i in indices:
        old = flat[i]
        flat[i] = old + h
        plus = value()
        flat[i] = old - h
        minus = value()
        flat[i] = old
        grad[i] = (plus - minus) / (2 * h)
    return grad.reshape(x.shape)


def relative_error(analytic, numeric):
    """||a - n|| / (||a|| + ||n||) over the finite entries of `numeric`.

    A norm over the whole array rather than the notes' per-element max, so that entries that are
    tiny compared with the rest (where finite differences carry mostly rounding noise) do not
    dominate the verdict.
    """
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    checked = np.isfinite(numeric)
    a, n = analytic[checked], numeric[checked]
    scale = np.linalg.norm(a) + np.linalg.norm(n)
    return float(np.linalg.norm(a - n) / scale) if scale > 0 else 0.0


# The notes' thresholds on the relative error |a - n| / max(|a|, |n|).
GOOD, ACCEPTABLE_WITH_KINKS, WRONG = 1e-7, 1e-4, 1e-2
# Allowance for the rounding in the difference quotient (f(x+h) - f(x-h)) / 2h of a float64 loss:
# NOISE_EPS * eps * |f| / h, generous for rounding (a loss carries a few ulps) yet far below the
# differences a 1e-5 relative error in a gradient makes.
NOISE_EPS = 100


class GradcheckResult:
    """Per-parameter relative errors and the verdict of a `gradcheck` run.

    errors: {parameter label: max relative error over the checked coordinates, after taking the
    difference quotient's rounding noise off |a - n|}, which the verdict uses; raw_errors: the
    same without that correction;
    verdict: "good" (< 1e-7), "acceptable" (< 1e-4 with kinks in the objective), "suspicious"
    (< 1e-2), "wrong" (>= 1e-2); kinks_crossed: coordinates where the perturbation moved an
    input of a kink (relu, hinge) across it, whose numeric gradient is not trustworthy.
    """

    def __init__(self, errors, has_kinks, kinks_crossed, raw_errors=None):
        self.errors = errors
        self.raw_errors = raw_errors if raw_errors is not None else dict(errors)
        self.has_kinks = has_kinks
        self.kinks_crossed = kinks_crossed
        self.max_error = max(errors.values()) if errors else 0.0
        self.verdict = self.judge(self.max_error, has_kinks)

    @staticmethod
    def judge(error, has_kinks):
        if error < GOOD:
            return "good"
        if error < ACCEPTABLE_WITH_KINKS and has_kinks:
            return "acceptable"
        return "suspicious" if error < WRONG else "wrong"

    @property
    def ok(self):
        return self.verdict in ("good", "acceptable")

    def __str__(self):
        lines = [f"{label:<32} relative error {self.raw_errors[label]:.2e} (beyond rounding "
                 f"noise {error:.2e})  {self.judge(error, self.has_kinks)}"
                 for label, error in self.errors.items()]
        lines.append(f"verdict: {self.verdict} (max relative error {self.max_error:.2e}"
                     f"{'; objective has kinks' if self.has_kinks else ''}"
                     + (f"; {len(self.kinks_crossed)} kink crossings" if self.kinks_crossed else "")
                     + ")")
        return "\n".join(lines)

    __repr__ = __str__


def _kink_state(layers, scores, y, loss_name):
    """Which side of every kink the current evaluation is on (compared before and after a step)."""
    fused = fused_activations(layers)  # (those run inside the Dense before them)
    state = [pattern for pattern in (layer.kink_pattern() for i, layer in enumerate(layers)
                                     if i - 1 not in fused) if pattern is not None]
    from .losses import SPECS
    spec = SPECS.get(loss_name)
    if spec is not None and spec.margins is not None:
        state.append(spec.margins(scores, y))
    return state


def gradcheck(model, X, y=None, loss="softmax_cross_entropy", num_checks=10, h=1e-5, seed=0,
              warn=True):
    """Check a model's (or a single layer's) backward pass against centered differences.

    model: a float64 Sequential or layer. With a Sequential, the objective is loss(model(X), y);
    with a layer, it is sum(layer(X) * df) for a fixed random upstream gradient df (as in the
    CS231n checker). For each parameter, `num_checks` random coordinates are perturbed by +-h,
    and the relative error |a - n| / max(|a|, |n|) of the notes is taken, after subtracting from
    |a - n| the difference quotient's rounding noise (100 eps |f| / h). Dropout layers replay
    the same masks in every evaluation, and BatchNorm's running statistics are restored at the
    end: the check leaves the model as it found it.
    Returns a GradcheckResult (print it for a table); warns when a kink was crossed.
    """
    from . import losses
    from .model import Sequential

    # (num_checks=0 would pass having checked nothing; h=0 divides by zero)
    num_checks = check_int("gradcheck: num_checks", num_checks, low=1)
    h = check_float("gradcheck: h", h, 0.0, low_open=True)
    layers = model.layers if isinstance(model, Sequential) else [model]
    params = [(f"{'layer ' + str(i) + ' ' if len(layers) > 1 else ''}{type(layer).__name__}."
               f"{p.name}", p) for i, layer in enumerate(layers) for p in layer.parameters()]
    if not params:
        raise ValueError("gradcheck: the model has no parameters to check")
    if any(p.dtype != np.float64 for _, p in params):
        raise TypeError("gradcheck: build the model in float64 (dtype=\"float64\") for gradient "
                        "checks; float32 finite differences are too coarse")
    rng = np.random.default_rng(seed)
    X = np.asarray(X, dtype=np.float64)
    if isinstance(model, Sequential):
        loss_name = loss if isinstance(loss, str) else getattr(loss, "__name__", "")
        loss_fn = losses.get(loss)

        def objective():
            scores = model.forward(X, training=True)
            value, dscores = loss_fn(scores, y)
            return value, dscores, scores

        def backward(dscores):
            model.zero_grad()
            model.backward(dscores)
    else:
        loss_name = ""
        df = None

        def objective():
            nonlocal df
            out = model.forward(X, training=True)
            if df is None:
                df = rng.standard_normal(out.shape)
            return float(np.sum(out * df)), df, out

        def backward(dout):
            model.zero_grad()
            model.backward(dout, need_dX=False)

    # Replay the same dropout masks in every evaluation (a mask is a function of the step), and
    # put back the buffers (running statistics) that training-mode forwards update.
    steps = [(layer, layer.step) for layer in layers if hasattr(layer, "step")]
    saved_buffers = [(array, array.copy()) for layer in layers
                     for array in layer.buffers().values()]
    evaluate = objective

    def objective():
        for layer, step in steps:
            layer.step = step
        return evaluate()

    _, upstream, scores = objective()
    backward(upstream)
    reference_kinks = _kink_state(layers, scores, y, loss_name)
    has_kinks = bool(reference_kinks)
    errors, raw_errors, crossed = {}, {}, []
    for label, p in params:
        analytic = p.grad.copy()
        flat = p.data.reshape(-1)
        coords = rng.choice(flat.size, size=min(num_checks, flat.size), replace=False)
        worst = worst_raw = 0.0
        for i in coords:
            old = flat[i]
            values = []
            for shift in (h, -h):
                flat[i] = old + shift
                value, _, scores = objective()
                values.append(value)
                state = _kink_state(layers, scores, y, loss_name)
                if any(not np.array_equal(a, b) for a, b in zip(state, reference_kinks)):
                    crossed.append((label, int(i)))
            flat[i] = old
            numeric = (values[0] - values[1]) / (2 * h)
            a = analytic.reshape(-1)[i]
            # The difference quotient carries rounding noise of about this size; only what exceeds
            # it counts as error (so truly-zero gradients, e.g. a bias before BatchNorm, and tiny
            # entries are not judged on noise).
            noise = NOISE_EPS * np.finfo(np.float64).eps * max(abs(values[0]), abs(values[1])) / h
            denominator = max(abs(a), abs(numeric))
            if denominator > 0:
                worst = max(worst, max(0.0, abs(a - numeric) - noise) / denominator)
                worst_raw = max(worst_raw, abs(a - numeric) / denominator)
        errors[label] = worst
        raw_errors[label] = worst_raw
    objective()  # leave the layers' work buffers as they were for the unperturbed parameters
    for layer, step in steps:
        layer.step = step
    for array, saved in saved_buffers:
        array[...] = saved
    crossed = sorted(set(crossed))
    if crossed and warn:
        import warnings
        warnings.warn(f"gradcheck: {len(crossed)} checked coordinates crossed a kink (relu or "
                      "hinge); their numeric gradients are unreliable. Check fewer datapoints or "
                      "a smaller h.", UserWarning, stacklevel=2)
    return GradcheckResult(errors, has_kinks, crossed, raw_errors)
