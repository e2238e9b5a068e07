"""MLPRegressor: mean squared error, one network output per target."""
import numpy as np
from sklearn.base import RegressorMixin

from ._base import _BaseMLP
from ._params import ATTRIBUTES_DOC, DTYPES, PARAMETERS_DOC


class MLPRegressor(RegressorMixin, _BaseMLP):
    __doc__ = ("""Multilayer perceptron regressor (mean squared error), trained by fastnn.

    y is (n_samples,) or (n_samples, n_outputs): one network output per target; predictions
    have y's shape.
""" + PARAMETERS_DOC + ATTRIBUTES_DOC)

    # Its public home: pickles, reprs and type(est).__module__ name fastnn.sklearn.
    __module__ = "fastnn.sklearn"
    _loss = "mse"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), continuing from the current weights and optimizer state."""
        return self._fit(X, y, sample_weight, fresh=not hasattr(self, "model_"),
                         incremental=True, classes=None)

    def _encode_targets(self, y, fresh, classes):
        y = np.asarray(y)
        if fresh:
            self._y_ndim = y.ndim
            self.n_outputs_ = 1 if y.ndim == 1 else y.shape[1]
        targets = y.reshape(len(y), -1).astype(DTYPES[self.compute_dtype][0])
        if targets.shape[1] != self.n_outputs_:
            raise ValueError(f"MLPRegressor: y has {targets.shape[1]} outputs, the fitted "
                             f"network {self.n_outputs_}")
        return targets

    def _n_outputs(self):
        return self.n_outputs_

    def predict(self, X):
        """Predictions (n_samples,) or (n_samples, n_outputs), as y was in fit."""
        scores = self._scores(X)
        return scores.ravel() if self._y_ndim == 1 else scores

    def _extra_state(self, params):
        return {"n_outputs_": self.n_outputs_, "_y_ndim": self._y_ndim}

    def _restore_extra(self, fitted):
        self.n_outputs_, self._y_ndim = fitted["n_outputs_"], fitted["_y_ndim"]
