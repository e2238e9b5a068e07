"""What MLPClassifier and MLPRegressor share: fit and partial_fit through fastnn's Trainer, the
fitted attributes, predictions in float64, and the estimator's state for pickling and .npz files.
A subclass gives its loss, its target encoding and its own fitted state."""
import contextlib
import warnings

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from .. import _backend, io
from ..callbacks import History
from ..model import Sequential
from ._params import DTYPES, build_model, build_optimizer, build_trainer, check_params, is_int

# Checks of sklearn.utils.estimator_checks that a minibatch learner cannot pass, with the reason
# (pass as check_estimator(est, expected_failed_checks=EXPECTED_FAILED_CHECKS)).
EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data":
        "a weight of k equals k repetitions of a sample in the loss, but repeating samples "
        "changes the minibatches and their order (stochastic optimization)",
}


class _BaseMLP(BaseEstimator):
    """The parameters, fit, partial_fit's machinery, predictions and state of both MLPs."""

    _loss = None  # the fastnn loss name

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, optimizer="adam",
                 alpha=1e-4, batch_size="auto", learning_rate_init=1e-3, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterov=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, dropout=0.0,
                 batch_norm=False, init=None, schedule=None, max_norm=None, l1=0.0, ema=None,
                 compute_dtype="float32", backend=None, n_threads=None,
                 early_stopping_metric="score"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.optimizer = optimizer
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterov = nesterov
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.init = init
        self.schedule = schedule
        self.max_norm = max_norm
        self.l1 = l1
        self.ema = ema
        self.compute_dtype = compute_dtype
        self.backend = backend
        self.n_threads = n_threads
        self.early_stopping_metric = early_stopping_metric

    # -- running -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _runtime(self):
        """The backend and thread count asked for, restored afterwards."""
        threads = _backend.get_num_threads()
        with _backend.use_backend(self.backend or _backend.get_backend()):
            if self.n_threads is not None:
                _backend.set_num_threads(int(self.n_threads))
            try:
                yield
            finally:
                _backend.set_num_threads(threads)

    def _new_trainer(self, n_samples, epochs, seed, incremental):
        """A Trainer for this fit, with the optimizer (and its state) of the last one if any."""
        if getattr(self, "_optimizer_", None) is None:
            self._optimizer_ = build_optimizer(self, self.model_)
        return build_trainer(self, self.model_, self._optimizer_, n_samples, epochs, seed,
                             incremental)

    # -- fitting -------------------------------------------------------------------------------

    def fit(self, X, y, sample_weight=None):
        """Train for max_iter epochs (fewer with the tol rule or early_stopping) from fresh
        weights (warm_start: from the last fit's). sample_weight (n_samples,) weights each
        sample's loss. Returns self."""
        fresh = not (self.warm_start and hasattr(self, "model_"))
        return self._fit(X, y, sample_weight, fresh=fresh, incremental=False, classes=None)

    def _fit(self, X, y, sample_weight, fresh, incremental, classes):
        sizes = check_params(self)
        X, y = validate_data(self, X, y, reset=fresh, dtype=(np.float64, np.float32),
                             multi_output=self._loss == "mse", y_numeric=self._loss == "mse")
        targets = self._encode_targets(y, fresh, classes)
        n_out = self._n_outputs()
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                                 ensure_non_negative=True)
        sample_weight = self._class_weighted(targets, sample_weight)
        rng = check_random_state(self.random_state)
        with self._runtime():
            if fresh:
                self.model_ = build_model(self, sizes, X.shape[1], n_out,
                                          int(rng.randint(np.iinfo(np.int32).max)))
                self._optimizer_ = None
                self._trainer = None
                self.loss_curve_, self.validation_scores_ = [], None
                self.best_validation_score_ = None
                self.n_iter_ = 0
            elif self.model_.out_features != n_out or self.model_.in_features != X.shape[1]:
                raise ValueError(f"{type(self).__name__}: the data has {X.shape[1]} features "
                                 f"and {n_out} outputs, the fitted network "
                                 f"{self.model_.in_features} and {self.model_.out_features}")
            elif self.model_.dtype.name != DTYPES[self.compute_dtype][0]:
                raise ValueError(f"{type(self).__name__}: compute_dtype={self.compute_dtype!r} "
                                 f"trains {DTYPES[self.compute_dtype][0]} weights, the fitted "
                                 f"network's are {self.model_.dtype.name}: fit afresh "
                                 "(warm_start=False) to change them")
            X = X.astype(self.model_.dtype, copy=False)
            validation = None
            if self.early_stopping and not incremental:
                X, targets, sample_weight, validation = self._split(X, targets, sample_weight,
                                                                    rng)
            seed = int(rng.randint(np.iinfo(np.int32).max))
            if incremental:
                if getattr(self, "_trainer", None) is None:
                    self._trainer = self._new_trainer(X.shape[0], 0, seed, True)
                trainer = self._trainer
                trainer.epochs = trainer.epoch + 1
            else:
                trainer = self._new_trainer(X.shape[0], int(self.max_iter), seed, False)
                self._trainer = None
            epochs_before = trainer.epoch
            history = trainer.fit(X, targets, validation_data=validation,
                                  sample_weight=sample_weight)
        self._predictor_ = self._float64_copy()
        self._record(history, trainer, epochs_before, X.shape[0], validation)
        if history.stop_reason == "completed" and not incremental and \
                trainer.epoch >= int(self.max_iter):
            warnings.warn(f"{type(self).__name__}: maximum iterations ({self.max_iter}) "
                          "reached and the optimization hasn't converged yet.",
                          ConvergenceWarning)
        return self

    def _split(self, X, targets, sample_weight, rng):
        stratify = targets if self._loss != "mse" else None
        parts = train_test_split(np.arange(X.shape[0]), test_size=self.validation_fraction,
                                 random_state=rng.randint(np.iinfo(np.int32).max),
                                 stratify=stratify)
        train, held = parts
        if len(train) == 0 or len(held) < 2:
            raise ValueError(f"{type(self).__name__}: validation_fraction "
                             f"{self.validation_fraction} of {X.shape[0]} samples leaves too "
                             "few for training and validation; lower it or turn off "
                             "early_stopping")
        weight = None if sample_weight is None else sample_weight[train]
        return X[train], targets[train], weight, (X[held], targets[held])

    def _record(self, history, trainer, epochs_before, n_samples, validation):
        epochs = history.train_loss[epochs_before:] if epochs_before < len(history.train_loss) \
            else []
        n_batches = len(trainer._batches(n_samples))
        reg = history.reg_loss
        start = len(history.loss) - len(epochs) * n_batches
        for e, loss in enumerate(epochs):
            batch_reg = reg[start + e * n_batches:start + (e + 1) * n_batches]
            self.loss_curve_.append(float(loss + (np.mean(batch_reg) if batch_reg else 0.0)))
        if validation is not None:
            if self._loss == "mse":
                scores = [self._r2_from_mse(v, validation[1]) for v in history.val_loss]
            else:
                scores = list(history.val_accuracy)
            self.validation_scores_ = [float(s) for s in scores]
            self.best_validation_score_ = max(self.validation_scores_) if scores else None
        self.n_iter_ += len(epochs)
        self.best_loss_ = min(self.loss_curve_) if self.loss_curve_ else None
        self.history_ = history

    @staticmethod
    def _r2_from_mse(mse, targets):
        """R^2 of the validation set from its mean squared error over all outputs (exact for one
        output; for several, 1 - MSE / mean variance)."""
        variance = float(np.mean(np.var(targets, axis=0)))
        return 1.0 - mse / variance if variance > 0 else 0.0

    def _class_weighted(self, targets, sample_weight):
        return sample_weight

    # -- predicting ----------------------------------------------------------------------------

    def _scores(self, X):
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        with self._runtime():
            return self._predictor_._predict_scores(X.astype(np.float64, copy=False), 4096)

    def _float64_copy(self):
        """The fitted network in float64, for predictions (made when fit ends): a float32
        GEMM's rounding depends on how many rows it multiplies, so a sample's float32
        prediction would change by an ulp with the other samples in the call; in float64 those
        differences stay ~1e-16."""
        model = self.model_
        if model.dtype == np.float64:
            return model
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an init that warns is overwritten below
            layers = [type(layer)(**dict(layer.config(), dtype="float64"))
                      for layer in model.layers]
            copy = Sequential(*layers, dtype="float64", seed=0)
        copy.load_state_dict(model.state_dict())
        return copy.eval()

    # -- persistence ---------------------------------------------------------------------------

    _FITTED = ("n_features_in_", "feature_names_in_", "loss_curve_", "validation_scores_",
               "best_loss_", "best_validation_score_", "n_iter_")

    def __getstate__(self):
        """Parameters and fitted values as plain Python and NumPy data; the network and the
        optimizer state as the bytes of a fastnn model file (arrays + JSON)."""
        state = {k: v for k, v in super().__getstate__().items()  # adds _sklearn_version
                 if k not in ("model_", "_optimizer_", "_trainer", "history_", "_predictor_")}
        if "model_" in self.__dict__:
            state["model_"] = io.to_bytes(self.model_, getattr(self, "_optimizer_", None))
            state["history_"] = self.history_.to_dict()
        return state

    def __setstate__(self, state):
        state = dict(state)
        model = state.pop("model_", None)
        history = state.pop("history_", None)
        super().__setstate__(state)  # warns when another scikit-learn version pickled it
        if model is not None:
            checkpoint = io.from_bytes(model)
            self.model_, self._optimizer_ = checkpoint.model, checkpoint.optimizer
            self.history_ = History.from_dict(history)
            self._trainer = None
            self._predictor_ = self._float64_copy()

    def save(self, path):
        """Write the fitted estimator to `path` as a fastnn .npz file (no pickle): the network,
        the optimizer state, the parameters and the fitted attributes. Read it back with
        fastnn.sklearn.load(path). Parameters must be JSON values (random_state: None or an
        int)."""
        check_is_fitted(self, "model_")
        params = self.get_params()
        if params["random_state"] is not None and not is_int(params["random_state"]):
            raise TypeError(f"{type(self).__name__}.save: random_state must be None or an int "
                            f"to be saved, got {type(params['random_state']).__name__}")
        params["hidden_layer_sizes"] = list(np.atleast_1d(params["hidden_layer_sizes"]).tolist())
        fitted = {k: getattr(self, k) for k in self._FITTED if hasattr(self, k)}
        if "feature_names_in_" in fitted:
            fitted["feature_names_in_"] = [str(v) for v in fitted["feature_names_in_"]]
        fitted.update(self._extra_state(params))
        extra = {"sklearn": {"estimator": type(self).__name__, "params": params,
                             "fitted": fitted, "history": self.history_.to_dict()}}
        io.save_checkpoint(path, self.model_, getattr(self, "_optimizer_", None), extra=extra)

    def _extra_state(self, params):
        return {}

    def _restore_extra(self, fitted):
        pass
