"""scikit-learn estimators: MLPClassifier and MLPRegressor, trained by fastnn's Trainer.

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from fastnn.sklearn import MLPClassifier
    clf = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(100,), dropout=0.2))
    clf.fit(X_train, y_train).score(X_test, y_test)

Drop-in for sklearn.neural_network's estimators of the same names: the parameters sklearn's MLP
has keep its names and meaning; fastnn's own add dropout, batch norm, more activations and
optimizers, schedules, L1, max-norm, weight averaging, class weights. Needs the `sklearn` extra
(pip install "fastnn[sklearn]"); `import fastnn` never imports scikit-learn.

Sparse input is refused (scikit-learn's TypeError: densify it with .toarray()); the networks are
dense. Pickling goes through fastnn's own model file (arrays + JSON, no pickled kernels or
buffers); `est.save(path)` writes a pickle-free .npz file that `fastnn.sklearn.load(path)` reads.
"""
import contextlib
import warnings

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
except ImportError:  # pragma: no cover - depends on the environment
    raise ImportError("fastnn.sklearn needs scikit-learn, which fastnn installs with its "
                      "`sklearn` extra: pip install \"fastnn[sklearn]\" (from a clone: "
                      "pip install \".[sklearn]\")") from None
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import (_check_sample_weight, check_is_fitted, column_or_1d,
                                      validate_data)

from . import _backend, io, optim, regularization
from .layers import BatchNorm, Dense, Dropout, ELU, Identity, LeakyReLU, ReLU, Sigmoid, Tanh
from .model import Sequential
from .optim import lr_scheduler
from .callbacks import EarlyStopping, History
from .trainer import Trainer

__all__ = ["MLPClassifier", "MLPRegressor", "load", "EXPECTED_FAILED_CHECKS"]

# Checks of sklearn.utils.estimator_checks that a minibatch learner cannot pass, with the reason
# (pass as check_estimator(est, expected_failed_checks=EXPECTED_FAILED_CHECKS)).
EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data":
        "a weight of k equals k repetitions of a sample in the loss, but repeating samples "
        "changes the minibatches and their order (stochastic optimization)",
}

ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "sigmoid": "sigmoid",
               "tanh": "tanh", "relu": "relu", "leaky_relu": "leaky_relu", "elu": "elu"}
_ACTIVATION_LAYERS = {"identity": Identity, "sigmoid": Sigmoid, "tanh": Tanh, "relu": ReLU,
                      "leaky_relu": LeakyReLU, "elu": ELU}
OPTIMIZERS = {"sgd": optim.SGD, "adam": optim.Adam, "adamw": optim.AdamW,
              "rmsprop": optim.RMSprop, "adagrad": optim.Adagrad}
SCHEDULES = (None, "constant", "cosine", "step", "exponential", "inverse-time")

_PARAMETERS_DOC = """
    Parameters (scikit-learn's names where the meaning is the same)
    ----------
    hidden_layer_sizes : tuple of int, default=(100,)
        Units of each hidden layer; () for a linear model.
    activation : {"relu", "identity", "logistic", "tanh", "sigmoid", "leaky_relu", "elu"},
        default="relu". Hidden-layer activation ("logistic" is "sigmoid").
    alpha : float, default=1e-4
        L2 penalty, scaled as scikit-learn's: 0.5 * alpha * ||W||^2 / batch_size is added to
        each minibatch's mean loss (weights only, not biases).
    batch_size : int or "auto", default="auto"
        Minibatch size; "auto" is min(200, n_samples) (clipped to n_samples).
    learning_rate_init : float, default=1e-3
        The optimizer's (initial) learning rate.
    max_iter : int, default=200
        Epochs (passes over the data) for fit; partial_fit runs one.
    shuffle : bool, default=True
        Reshuffle the samples every epoch.
    random_state : int, RandomState or None, default=None
        Seeds the weights, dropout, shuffling and the validation split.
    tol : float, default=1e-4
        Improvement below tol for n_iter_no_change epochs (of the training loss, or of the
        validation metric with early_stopping) ends fit; the best epoch's weights are kept.
    verbose : bool, default=False
        Print one line per epoch, with a progress bar on a terminal (needs tqdm, the
        `progress` extra).
    warm_start : bool, default=False
        fit continues from the previous fit's weights and optimizer state.
    momentum : float, default=0.9
        Momentum of optimizer="sgd".
    nesterov : bool, default=True
        Nesterov momentum for optimizer="sgd" (scikit-learn's nesterovs_momentum).
    early_stopping : bool, default=False
        Hold out validation_fraction of the data (stratified for the classifier) and stop when
        the validation metric (early_stopping_metric) has not improved by tol for
        n_iter_no_change epochs; the best epoch's weights are kept.
    validation_fraction : float, default=0.1
        Fraction held out with early_stopping.
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's (and AdamW's) moment decays and epsilon.
    n_iter_no_change : int, default=10
        Patience, in epochs, of the tol rule.

    fastnn's own
    ------------
    optimizer : {"adam", "sgd", "adamw", "rmsprop", "adagrad"}, default="adam"
        scikit-learn's solver (without lbfgs), plus AdamW, RMSprop and Adagrad.
    dropout : float, default=0.0
        Dropout probability after every hidden layer (inverted dropout; 0: none).
    batch_norm : bool, default=False
        BatchNorm between every hidden affine layer and its activation.
    init : str, float or None, default=None
        Weight initialization (a fastnn.init name such as "he", "xavier", "glorot_uniform", or a
        float scale of randn); None: He for the ReLU family, Xavier otherwise.
    schedule : {None, "constant", "cosine", "step", "exponential", "inverse-time"},
        default=None. Learning-rate schedule over max_iter epochs, stepped every epoch: cosine
        anneals to 0; step multiplies by 0.1 every max_iter // 3 epochs; exponential decays to
        1% at max_iter; inverse-time is lr / (1 + 10 * epoch / max_iter). None = constant.
    max_norm : float or None, default=None
        Max-norm constraint: each unit's incoming weight vector is clipped to this norm after
        every update.
    l1 : float, default=0.0
        L1 penalty l1 * sum(|W|) added to each minibatch's mean loss.
    ema : float or None, default=None
        Keep an exponential moving average of the weights with this decay (e.g. 0.999); the
        averaged weights are validated and kept.
    compute_dtype : {"float32", "float64"}, default="float32"
        Precision of the weights and the arithmetic (outputs are float64).
    backend : {None, "cython", "numpy"}, default=None
        fastnn's kernels for fit and predict (None: the current backend).
    n_threads : int or None, default=None
        Threads for fastnn's compiled kernels during fit and predict (None: the current
        setting).
    early_stopping_metric : {"score", "loss"}, default="score"
        What early_stopping watches on the validation set: the estimator's score (accuracy;
        for the regressor the mean squared error, which ranks as R^2 does for one output) or
        the loss.
"""

_ATTRIBUTES_DOC = """
    Attributes
    ----------
    n_features_in_, feature_names_in_ (DataFrames with string column names only)
    loss_curve_ : list of float, the training loss (data + penalties) per epoch
    validation_scores_ : list of float or None, the validation score per epoch (early_stopping)
    best_loss_ : float, the lowest value of loss_curve_
    best_validation_score_ : float or None
    n_iter_ : int, epochs run
    model_ : fastnn.Sequential, the network (its outputs are the class scores / predictions)
    history_ : fastnn.History, everything the Trainer recorded
"""


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and \
        not isinstance(value, (bool, np.bool_)) and np.isfinite(value)


class _BaseMLP(BaseEstimator):
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

    # -- parameters ----------------------------------------------------------------------------

    def _check_params(self):
        """Every parameter checked before anything is trained; errors name the parameter."""
        name = type(self).__name__

        def bad(param, accepts):
            return ValueError(f"{name}: {param} must be {accepts}, got "
                              f"{getattr(self, param)!r}")

        sizes = self.hidden_layer_sizes
        if _is_int(sizes):
            sizes = (sizes,)
        if not isinstance(sizes, (tuple, list)) or not all(_is_int(s) and s > 0 for s in sizes):
            raise bad("hidden_layer_sizes", "a tuple of positive integers")
        if self.activation not in ACTIVATIONS:
            raise bad("activation", f"one of {sorted(ACTIVATIONS)}")
        if self.optimizer not in OPTIMIZERS:
            raise bad("optimizer", f"one of {sorted(OPTIMIZERS)}")
        for param in ("alpha", "l1", "tol", "momentum", "epsilon"):
            if not (_is_real(getattr(self, param)) and getattr(self, param) >= 0):
                raise bad(param, "a finite number >= 0")
        if not (_is_real(self.learning_rate_init) and self.learning_rate_init > 0):
            raise bad("learning_rate_init", "a finite number > 0")
        for param in ("beta_1", "beta_2"):
            if not (_is_real(getattr(self, param)) and 0 <= getattr(self, param) < 1):
                raise bad(param, "a number in [0, 1)")
        if not (self.batch_size == "auto" or (_is_int(self.batch_size) and self.batch_size > 0)):
            raise bad("batch_size", "a positive integer or \"auto\"")
        for param in ("max_iter", "n_iter_no_change"):
            if not (_is_int(getattr(self, param)) and getattr(self, param) > 0):
                raise bad(param, "a positive integer")
        for param in ("shuffle", "verbose", "warm_start", "nesterov", "early_stopping",
                      "batch_norm"):
            if not isinstance(getattr(self, param), (bool, np.bool_, int)):
                raise bad(param, "True or False")
        if not (_is_real(self.validation_fraction) and 0 < self.validation_fraction < 1):
            raise bad("validation_fraction", "a number in (0, 1)")
        if not (_is_real(self.dropout) and 0 <= self.dropout < 1):
            raise bad("dropout", "a probability in [0, 1)")
        if self.schedule not in SCHEDULES:
            raise bad("schedule", f"one of {SCHEDULES}")
        if self.max_norm is not None and not (_is_real(self.max_norm) and self.max_norm > 0):
            raise bad("max_norm", "None or a number > 0")
        if self.ema is not None and not (_is_real(self.ema) and 0 < self.ema < 1):
            raise bad("ema", "None or a decay in (0, 1)")
        if self.compute_dtype not in ("float32", "float64"):
            raise bad("compute_dtype", "\"float32\" or \"float64\"")
        if self.backend is not None and self.backend not in _backend.BACKENDS:
            raise bad("backend", f"None or one of {_backend.BACKENDS}")
        if self.n_threads is not None and not (_is_int(self.n_threads) and self.n_threads > 0):
            raise bad("n_threads", "None or a positive integer")
        if self.early_stopping_metric not in ("score", "loss"):
            raise bad("early_stopping_metric", "\"score\" or \"loss\"")
        if self.init is not None:
            from .init import check_init
            try:
                check_init(self.init)
            except (TypeError, ValueError) as error:
                raise ValueError(f"{name}: init: {error}") from None
        return tuple(int(s) for s in sizes)

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

    # -- building ------------------------------------------------------------------------------

    def _build_model(self, sizes, n_in, n_out, seed):
        activation = ACTIVATIONS[self.activation]
        layers, width = [], n_in
        for size in sizes:
            if self.batch_norm:
                layers += [Dense(width, size, init=self.init), BatchNorm(size),
                           _ACTIVATION_LAYERS[activation]()]
            else:
                layers.append(Dense(width, size, activation=activation, init=self.init))
            if self.dropout > 0:
                layers.append(Dropout(float(self.dropout)))
            width = size
        layers.append(Dense(width, n_out, init=self.init))
        return Sequential(*layers, dtype=self.compute_dtype, seed=seed)

    def _build_optimizer(self, model):
        params, lr = model.parameters(), float(self.learning_rate_init)
        if self.optimizer == "sgd":
            return optim.SGD(params, lr=lr, momentum=float(self.momentum),
                             nesterov=bool(self.nesterov) and self.momentum > 0)
        if self.optimizer in ("adam", "adamw"):
            return OPTIMIZERS[self.optimizer](params, lr=lr, betas=(float(self.beta_1),
                                                                    float(self.beta_2)),
                                              eps=float(self.epsilon))
        return OPTIMIZERS[self.optimizer](params, lr=lr)

    def _build_schedule(self, optimizer):
        epochs = int(self.max_iter)
        if self.schedule in (None, "constant"):
            return None
        if self.schedule == "cosine":
            return lr_scheduler.CosineAnnealingLR(optimizer, epochs)
        if self.schedule == "step":
            return lr_scheduler.StepLR(optimizer, max(1, epochs // 3), 0.1)
        if self.schedule == "exponential":
            return lr_scheduler.ExponentialLR(optimizer, 0.01 ** (1.0 / epochs))
        return lr_scheduler.InverseTimeLR(optimizer, 10.0 / epochs)

    def _new_trainer(self, n_samples, epochs, seed, incremental, validation):
        batch = min(200 if self.batch_size == "auto" else int(self.batch_size), n_samples)
        penalty = None
        if self.alpha or self.l1:
            penalty = regularization.ElasticNet(l1=float(self.l1),
                                                l2=float(self.alpha) / batch)
        stopping = None
        if not incremental:
            if self.early_stopping:
                monitor = "val_loss" if self.early_stopping_metric == "loss" or \
                    self._loss == "mse" else "val_accuracy"
            else:
                monitor = "train_loss"
            stopping = EarlyStopping(monitor, patience=int(self.n_iter_no_change),
                                     min_delta=float(self.tol))
        optimizer = self._optimizer_ if getattr(self, "_optimizer_", None) is not None \
            else self._build_optimizer(self.model_)
        self._optimizer_ = optimizer
        return Trainer(self.model_, optimizer, loss=self._loss, batch_size=batch,
                       epochs=epochs, schedule=self._build_schedule(optimizer),
                       regularization=penalty,
                       constraint=regularization.MaxNorm(float(self.max_norm))
                       if self.max_norm is not None else None,
                       early_stopping=stopping, ema=self.ema, seed=seed,
                       progress=bool(self.verbose), monitor=False,
                       gap_threshold=float("inf"), shuffle=bool(self.shuffle))

    # -- fitting -------------------------------------------------------------------------------

    def fit(self, X, y, sample_weight=None):
        """Train for max_iter epochs (fewer with the tol rule or early_stopping) from fresh
        weights (warm_start: from the last fit's). sample_weight (n_samples,) weights each
        sample's loss. Returns self."""
        fresh = not (self.warm_start and hasattr(self, "model_"))
        return self._fit(X, y, sample_weight, fresh=fresh, incremental=False, classes=None)

    def _fit(self, X, y, sample_weight, fresh, incremental, classes):
        sizes = self._check_params()
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
                self.model_ = self._build_model(sizes, X.shape[1], n_out,
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
            X = X.astype(self.compute_dtype, copy=False)
            validation = None
            if self.early_stopping and not incremental:
                X, targets, sample_weight, validation = self._split(X, targets, sample_weight,
                                                                    rng)
            seed = int(rng.randint(np.iinfo(np.int32).max))
            if incremental:
                if getattr(self, "_trainer", None) is None:
                    self._trainer = self._new_trainer(X.shape[0], 0, seed, True, None)
                trainer = self._trainer
                trainer.epochs = trainer.epoch + 1
            else:
                trainer = self._new_trainer(X.shape[0], int(self.max_iter), seed, False,
                                            validation)
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
        if params["random_state"] is not None and not _is_int(params["random_state"]):
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


class MLPClassifier(ClassifierMixin, _BaseMLP):
    __doc__ = ("""Multilayer perceptron classifier (softmax cross-entropy), trained by fastnn.

    Labels may be strings, integers or booleans, two classes or more; the network has one
    output per class (also for two). class_weight and sample_weight weight each sample's loss.
""" + _PARAMETERS_DOC + """    class_weight : None, "balanced" or dict {label: weight}, default=None
        Weights of the classes' losses; "balanced" is n_samples / (n_classes * count).
""" + _ATTRIBUTES_DOC + """    classes_ : the class labels, sorted
""")

    _loss = "softmax_cross_entropy"

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, optimizer="adam",
                 alpha=1e-4, batch_size="auto", learning_rate_init=1e-3, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterov=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, dropout=0.0,
                 batch_norm=False, init=None, schedule=None, max_norm=None, l1=0.0, ema=None,
                 compute_dtype="float32", backend=None, n_threads=None,
                 early_stopping_metric="score", class_weight=None):
        super().__init__(
            hidden_layer_sizes, activation, optimizer=optimizer, alpha=alpha,
            batch_size=batch_size, learning_rate_init=learning_rate_init, max_iter=max_iter,
            shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum, nesterov=nesterov,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change,
            dropout=dropout, batch_norm=batch_norm, init=init, schedule=schedule,
            max_norm=max_norm, l1=l1, ema=ema, compute_dtype=compute_dtype, backend=backend,
            n_threads=n_threads, early_stopping_metric=early_stopping_metric)
        self.class_weight = class_weight

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over (X, y), continuing from the current weights and optimizer state.
        `classes` (every label that will ever appear) is required on the first call."""
        first = not hasattr(self, "model_")
        if first and classes is None:
            raise ValueError("MLPClassifier.partial_fit: classes must be passed on the first "
                             "call (every label that will appear)")
        return self._fit(X, y, sample_weight, fresh=first, incremental=True,
                         classes=classes if first else None)

    def _encode_targets(self, y, fresh, classes):
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if fresh:
            self.classes_ = unique_labels(y) if classes is None else unique_labels(classes)
            if classes is not None and not np.isin(y, self.classes_).all():
                raise ValueError(f"MLPClassifier: y has labels "
                                 f"{sorted(set(np.unique(y)) - set(self.classes_))} that are "
                                 f"not in classes {self.classes_.tolist()}")
        if not np.isin(y, self.classes_).all():
            raise ValueError(f"MLPClassifier: y has labels "
                             f"{sorted(set(np.unique(y)) - set(self.classes_))} not seen in "
                             f"the first fit (classes_ = {self.classes_.tolist()})")
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def _n_outputs(self):
        return len(self.classes_)

    def _class_weighted(self, targets, sample_weight):
        cw = self.class_weight
        if cw is None:
            return sample_weight
        if isinstance(cw, str) and cw == "balanced":
            present = np.unique(targets)
            weights = np.ones(len(self.classes_))
            weights[present] = compute_class_weight("balanced", classes=present, y=targets)
        elif isinstance(cw, dict):
            unknown = [label for label in cw if label not in set(self.classes_.tolist())]
            if unknown:
                raise ValueError(f"MLPClassifier: class_weight names labels {unknown} that are "
                                 f"not classes ({self.classes_.tolist()})")
            weights = np.array([float(cw.get(label, 1.0)) for label in self.classes_.tolist()])
            if not np.isfinite(weights).all() or (weights < 0).any():
                raise ValueError("MLPClassifier: class_weight values must be finite and >= 0")
        else:
            raise ValueError(f"MLPClassifier: class_weight must be None, \"balanced\" or a dict "
                             f"{{label: weight}}, got {cw!r}")
        per_sample = weights[targets]
        return per_sample if sample_weight is None else per_sample * sample_weight

    def predict_log_proba(self, X):
        """Log of the class probabilities (n_samples, n_classes), columns in classes_ order."""
        scores = self._scores(X)
        scores -= scores.max(axis=1, keepdims=True)
        scores -= np.log(np.exp(scores).sum(axis=1, keepdims=True))
        return scores

    def predict_proba(self, X):
        """Class probabilities (n_samples, n_classes), columns in classes_ order."""
        return np.exp(self.predict_log_proba(X))

    def predict(self, X):
        """The most probable class label of each sample."""
        scores = self._scores(X)
        return self.classes_[scores.argmax(axis=1)]

    def _extra_state(self, params):
        classes = self.classes_
        if classes.dtype.kind not in "biufUO":
            raise TypeError(f"MLPClassifier.save: cannot store labels of dtype {classes.dtype}")
        cw = params["class_weight"]
        if isinstance(cw, dict):
            params["class_weight"] = {"__pairs__": [[k.item() if hasattr(k, "item") else k, v]
                                                    for k, v in cw.items()]}
        return {"classes_": [c.item() if hasattr(c, "item") else c for c in classes.tolist()],
                "classes_dtype": classes.dtype.str if classes.dtype.kind != "O" else "O"}

    def _restore_extra(self, fitted):
        self.classes_ = np.array(fitted["classes_"], dtype=np.dtype(fitted["classes_dtype"]))


class MLPRegressor(RegressorMixin, _BaseMLP):
    __doc__ = ("""Multilayer perceptron regressor (mean squared error), trained by fastnn.

    y is (n_samples,) or (n_samples, n_outputs): one network output per target; predictions
    have y's shape.
""" + _PARAMETERS_DOC + _ATTRIBUTES_DOC)

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
        targets = y.reshape(len(y), -1).astype(self.compute_dtype)
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


ESTIMATORS = {cls.__name__: cls for cls in (MLPClassifier, MLPRegressor)}


def load(path):
    """The estimator saved by `est.save(path)`, fitted, from a fastnn .npz file (no pickle:
    the file is checked before anything in it is used). Raises ValueError for a fastnn file
    that holds no estimator."""
    checkpoint = io.load_checkpoint(path)
    saved = (checkpoint.extra or {}).get("sklearn") if isinstance(checkpoint.extra, dict) \
        else None
    if not isinstance(saved, dict) or saved.get("estimator") not in ESTIMATORS:
        raise ValueError(f"{path}: not a fastnn.sklearn estimator file (a fastnn model file "
                         "without the estimator's state; read it with fastnn.load)")
    params = dict(saved["params"])
    params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    cw = params.get("class_weight")
    if isinstance(cw, dict) and "__pairs__" in cw:
        params["class_weight"] = {k: v for k, v in cw["__pairs__"]}
    estimator = ESTIMATORS[saved["estimator"]](**params)
    fitted = saved["fitted"]
    for key in _BaseMLP._FITTED:
        if key in fitted:
            setattr(estimator, key, fitted[key])
    if "feature_names_in_" in fitted:
        estimator.feature_names_in_ = np.array(fitted["feature_names_in_"], dtype=object)
    estimator._restore_extra(fitted)
    estimator.model_, estimator._optimizer_ = checkpoint.model, checkpoint.optimizer
    estimator.model_.eval()
    estimator.history_ = History.from_dict(saved["history"])
    estimator._trainer = None
    estimator._predictor_ = estimator._float64_copy()
    return estimator
