"""Weight penalties and constraints. They act on connection weights only (`Parameter.is_weight`:
Dense and Maxout W), never on biases, BatchNorm's gamma/beta or PReLU's slopes.

    penalty = fnn.regularization.L2(1e-3)
    loss, dscores = fnn.losses.softmax_cross_entropy(model(X), y)
    model.zero_grad(); model.backward(dscores)
    reg_loss = penalty(model)        # adds its gradient to the weights' .grad, returns its value
    optimizer.step()
    fnn.regularization.MaxNorm(3.0)(model)   # after the step: clip each unit's incoming weights

The data loss and the penalty stay separate numbers: report loss + reg_loss as the objective.
Conventions of the CS231n notes: L2 is 0.5 * lam * sum(w**2) (gradient lam * w), L1 is
lam * sum(|w|) (gradient lam * sign(w)), elastic net is the sum of the two.
"""
import numbers

import numpy as np

from . import _backend

__all__ = ["L2", "L1", "ElasticNet", "MaxNorm", "weights"]


def weights(params):
    """The trainable weight Parameters of a model, a layer or a list of Parameters (frozen ones,
    requires_grad False, are constants: no penalty, no constraint)."""
    params = params.parameters() if callable(getattr(params, "parameters", None)) else params
    if isinstance(params, (str, bytes)) or not hasattr(params, "__iter__"):
        raise TypeError("regularization: params must be a model, a layer or a list of "
                        f"Parameters, got {type(params).__name__}")
    params = list(params)
    for p in params:
        if not hasattr(p, "is_weight") or not hasattr(p, "requires_grad"):
            raise TypeError("regularization: params must be a model, a layer or a list of "
                            f"Parameters; it holds a {type(p).__name__}")
    return [p for p in params if p.is_weight and p.requires_grad]


def _real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _check_strength(name, value):
    if not (_real(value) and np.isfinite(value) and value >= 0):
        raise ValueError(f"{name}: strength must be a finite number >= 0, got {value!r}")
    return float(value)


class ElasticNet:
    """l1 * sum(|w|) + 0.5 * l2 * sum(w**2) over the weights."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _check_strength(type(self).__name__, l1)
        self.l2 = _check_strength(type(self).__name__, l2)

    def value(self, params):
        """The penalty, without touching gradients."""
        return self._apply(weights(params), gradients=False)

    def __call__(self, params):
        """Add the penalty's gradient to every weight's .grad; return the penalty."""
        return self._apply(weights(params), gradients=True)

    def _apply(self, params, gradients):
        penalty, total = _backend.kernels.elastic_net, 0.0
        for p in params:
            total += penalty(p.data, p.grad if gradients else None, l1=self.l1, l2=self.l2)
        return total

    def __repr__(self):
        return f"{type(self).__name__}(l1={self.l1:g}, l2={self.l2:g})"


class L2(ElasticNet):
    """0.5 * lam * sum(w**2): weight decay as a penalty (gradient lam * w)."""

    def __init__(self, lam):
        super().__init__(l2=lam)

    def __repr__(self):
        return f"L2({self.l2:g})"


class L1(ElasticNet):
    """lam * sum(|w|): drives weights to exactly sparse solutions (gradient lam * sign(w))."""

    def __init__(self, lam):
        super().__init__(l1=lam)

    def __repr__(self):
        return f"L1({self.l1:g})"


class MaxNorm:
    """Max-norm constraint: after each update, every unit's incoming weight vector (a column of
    W, shape (in, out)) is scaled down to Euclidean norm <= c if it is longer."""

    def __init__(self, c):
        if not (_real(c) and np.isfinite(c) and c > 0):
            raise ValueError(f"MaxNorm: c must be a finite number > 0, got {c!r}")
        self.c = float(c)

    def __call__(self, params):
        for p in weights(params):
            norms = np.sqrt(np.einsum("ij,ij->j", p.data, p.data, dtype=np.float64))
            too_long = norms > self.c
            if np.any(too_long):
                # Scale in float64 and round once, aiming two ulps inside the ball: rounding
                # (half an ulp per entry) and computing the norm cannot put it back above c.
                scale = self.c * (1 - 2 * np.finfo(p.dtype).eps) / norms[too_long]
                p.data[:, too_long] = (p.data[:, too_long] * scale).astype(p.dtype)

    def __repr__(self):
        return f"MaxNorm({self.c:g})"
