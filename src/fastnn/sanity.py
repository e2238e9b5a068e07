"""The notes' sanity checks before a long training run, as functions (and `fastnn check`).

- check_initial_loss: with small weights and no regularization the loss starts where chance puts
  it: ln C for softmax, C - 1 for the multiclass SVM, ln 2 for binary logistic, 1 for binary hinge.
- check_regularization_raises_loss: adding the penalty raises the objective.
- check_overfit_small_subset: the model can drive a tiny subset (20 samples) to 100% training
  accuracy with regularization off; if it cannot, something is broken.
Each returns a SanityResult; none changes the model (parameters are restored afterwards).
"""

import numpy as np

from . import losses as _losses
from ._validation import check_float, check_int
from .metrics import accuracy


class SanityResult:
    def __init__(self, name, passed, value, expected, message):
        self.name, self.passed, self.value, self.expected, self.message = (
            name, bool(passed), value, expected, message)

    def __repr__(self):
        return f"[{'ok' if self.passed else 'FAIL'}] {self.name}: {self.message}"


def expected_initial_loss(loss, n_classes):
    """The chance-level loss of a model whose scores are all ~0, or None (regression)."""
    spec = _losses.spec(_losses.get(loss))
    n_classes = check_int("expected_initial_loss: n_classes", n_classes, low=2)
    return None if spec is None or spec.initial_loss is None else spec.initial_loss(n_classes)


def check_initial_loss(model, X, y, loss="softmax_cross_entropy", tolerance=0.25):
    """The data loss of `model` on (X, y), against its chance level (within `tolerance`,
    relative). Meaningful for small initial weights (e.g. init=0.01 or "small")."""
    tolerance = check_float("check_initial_loss: tolerance", tolerance, 0.0)
    value, _ = _losses.get(loss)(model.forward(X, training=False), y)
    n_classes = model.out_features if model.out_features > 1 else 2
    expected = expected_initial_loss(loss, n_classes)
    if expected is None:
        return SanityResult("initial loss", True, value, None,
                            f"{value:.4f} (no chance level for this loss)")
    passed = abs(value - expected) <= tolerance * expected
    hint = "" if passed else " (large initial weights, or a bug in the loss?)"
    return SanityResult("initial loss", passed, value, expected,
                        f"{value:.4f}, expected about {expected:.4f}{hint}")


def check_regularization_raises_loss(model, X, y, regularization, loss="softmax_cross_entropy"):
    """data loss + penalty must exceed the data loss alone."""
    data_loss, _ = _losses.get(loss)(model.forward(X, training=False), y)
    penalty = regularization.value(model)
    passed = penalty > 0 and data_loss + penalty > data_loss
    return SanityResult("regularization raises the loss", passed, data_loss + penalty, data_loss,
                        f"{data_loss:.4f} -> {data_loss + penalty:.4f} with {regularization!r}")


def check_overfit_small_subset(model, X, y, loss="softmax_cross_entropy", n_samples=20,
                               iterations=300, lr=1e-2, seed=0):
    """Train on `n_samples` samples (full batch, Adam, no regularization) and require 100%
    training accuracy (or, for regression, a loss 100x below the start). The model's parameters
    are restored afterwards."""
    from .optim import Adam

    rng = np.random.default_rng(seed)
    pick = rng.choice(len(X), size=min(n_samples, len(X)), replace=False)
    Xs, ys = np.asarray(X)[pick], np.asarray(y)[pick]
    loss_fn = _losses.get(loss)
    name = loss if isinstance(loss, str) else loss.__name__
    saved = model.state_dict()
    optimizer = Adam(model.parameters(), lr=lr)
    try:
        first = None
        for _ in range(iterations):
            scores = model.forward(Xs, training=False)
            value, dscores = loss_fn(scores, ys)
            first = value if first is None else first
            model.zero_grad()
            model.backward(dscores)
            optimizer.step()
        scores = model.forward(Xs, training=False)
        value, _ = loss_fn(scores, ys)
        acc = accuracy(name, scores, ys)
    finally:
        model.load_state_dict(saved)
        model.zero_grad()
    if acc is None:
        passed = value < first / 100
        message = f"loss {first:.4g} -> {value:.4g} on {len(pick)} samples"
    else:
        passed = acc == 1.0
        message = (f"training accuracy {acc:.2f} on {len(pick)} samples after {iterations} "
                   f"iterations (loss {value:.4g})")
    return SanityResult("overfit a small subset", passed, acc if acc is not None else value,
                        1.0 if acc is not None else None, message)


def sanity_checks(model, X, y, loss="softmax_cross_entropy", regularization=None):
    """All three checks (the regularization one when a penalty is given); a list of results."""
    results = [check_initial_loss(model, X, y, loss)]
    if regularization is not None:
        results.append(check_regularization_raises_loss(model, X, y, regularization, loss))
    results.append(check_overfit_small_subset(model, X, y, loss))
    return results
