"""The estimators' parameters: their documentation, their checks, and their translation into
fastnn's network, optimizer, schedule and Trainer (scikit-learn's names mapped to fastnn's)."""
import numpy as np

from .. import _backend, optim, regularization
from ..callbacks import EarlyStopping
from .._activations import CODES
from ..layers import LAYERS, Activation, BatchNorm, Dense, Dropout
from ..model import Sequential
from ..optim import lr_scheduler
from ..trainer import Trainer

# From the activation table and the layer registry: scikit-learn's "logistic" is fastnn's sigmoid.
ACTIVATIONS = {"logistic": "sigmoid", **{name: name for name in CODES}}
ACTIVATION_LAYERS = {cls.activation: cls for cls in LAYERS.values()
                     if issubclass(cls, Activation) and "activation" in vars(cls)}
OPTIMIZERS = {"sgd": optim.SGD, "adam": optim.Adam, "adamw": optim.AdamW,
              "rmsprop": optim.RMSprop, "adagrad": optim.Adagrad}
SCHEDULES = (None, "constant", "cosine", "step", "exponential", "inverse-time")
# compute_dtype -> (the weights' dtype, the network's compute_dtype)
DTYPES = {"float32": ("float32", "float32"), "float64": ("float64", "float32"),
          "bfloat16": ("float32", "bfloat16")}

PARAMETERS_DOC = """
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
    compute_dtype : {"float32", "float64", "bfloat16"}, default="float32"
        Precision of the weights and the arithmetic (outputs are float64); "bfloat16" is mixed
        precision: float32 weights, bfloat16 GEMM operands with float32 accumulation in fit
        (fastnn.Sequential's compute_dtype).
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

ATTRIBUTES_DOC = """
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


def is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_real(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and \
        not isinstance(value, (bool, np.bool_)) and np.isfinite(value)


def check_params(est):
    """Every parameter of `est` checked before anything is trained; errors name the parameter.
    Returns the hidden layer sizes as a tuple of ints."""
    name = type(est).__name__

    def bad(param, accepts):
        return ValueError(f"{name}: {param} must be {accepts}, got "
                          f"{getattr(est, param)!r}")

    sizes = est.hidden_layer_sizes
    if is_int(sizes):
        sizes = (sizes,)
    if not isinstance(sizes, (tuple, list)) or not all(is_int(s) and s > 0 for s in sizes):
        raise bad("hidden_layer_sizes", "a tuple of positive integers")
    if est.activation not in ACTIVATIONS:
        raise bad("activation", f"one of {sorted(ACTIVATIONS)}")
    if est.batch_norm and ACTIVATIONS[est.activation] not in ACTIVATION_LAYERS:
        raise bad("activation", "one with a layer of its own when batch_norm is True: one of "
                  f"{sorted(a for a, f in ACTIVATIONS.items() if f in ACTIVATION_LAYERS)}")
    if est.optimizer not in OPTIMIZERS:
        raise bad("optimizer", f"one of {sorted(OPTIMIZERS)}")
    for param in ("alpha", "l1", "tol", "momentum", "epsilon"):
        if not (is_real(getattr(est, param)) and getattr(est, param) >= 0):
            raise bad(param, "a finite number >= 0")
    if not (is_real(est.learning_rate_init) and est.learning_rate_init > 0):
        raise bad("learning_rate_init", "a finite number > 0")
    for param in ("beta_1", "beta_2"):
        if not (is_real(getattr(est, param)) and 0 <= getattr(est, param) < 1):
            raise bad(param, "a number in [0, 1)")
    if not (est.batch_size == "auto" or (is_int(est.batch_size) and est.batch_size > 0)):
        raise bad("batch_size", "a positive integer or \"auto\"")
    for param in ("max_iter", "n_iter_no_change"):
        if not (is_int(getattr(est, param)) and getattr(est, param) > 0):
            raise bad(param, "a positive integer")
    for param in ("shuffle", "verbose", "warm_start", "nesterov", "early_stopping",
                  "batch_norm"):
        if not isinstance(getattr(est, param), (bool, np.bool_, int)):
            raise bad(param, "True or False")
    if not (is_real(est.validation_fraction) and 0 < est.validation_fraction < 1):
        raise bad("validation_fraction", "a number in (0, 1)")
    if not (is_real(est.dropout) and 0 <= est.dropout < 1):
        raise bad("dropout", "a probability in [0, 1)")
    if est.schedule not in SCHEDULES:
        raise bad("schedule", f"one of {SCHEDULES}")
    if est.max_norm is not None and not (is_real(est.max_norm) and est.max_norm > 0):
        raise bad("max_norm", "None or a number > 0")
    if est.ema is not None and not (is_real(est.ema) and 0 < est.ema < 1):
        raise bad("ema", "None or a decay in (0, 1)")
    if not isinstance(est.compute_dtype, str) or est.compute_dtype not in DTYPES:
        raise bad("compute_dtype", "\"float32\", \"float64\" or \"bfloat16\"")
    if est.backend is not None and est.backend not in _backend.BACKENDS:
        raise bad("backend", f"None or one of {_backend.BACKENDS}")
    if est.n_threads is not None and not (is_int(est.n_threads) and est.n_threads > 0):
        raise bad("n_threads", "None or a positive integer")
    if est.early_stopping_metric not in ("score", "loss"):
        raise bad("early_stopping_metric", "\"score\" or \"loss\"")
    if est.init is not None:
        from ..init import check_init
        try:
            check_init(est.init)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{name}: init: {error}") from None
    return tuple(int(s) for s in sizes)


def build_model(est, sizes, n_in, n_out, seed):
    """The network: per hidden layer Dense (or Dense, BatchNorm, activation), then Dropout if
    asked; a linear output layer."""
    activation = ACTIVATIONS[est.activation]
    layers, width = [], n_in
    for size in sizes:
        if est.batch_norm:
            layers += [Dense(width, size, init=est.init), BatchNorm(size),
                       ACTIVATION_LAYERS[activation]()]
        else:
            layers.append(Dense(width, size, activation=activation, init=est.init))
        if est.dropout > 0:
            layers.append(Dropout(float(est.dropout)))
        width = size
    layers.append(Dense(width, n_out, init=est.init))
    dtype, compute = DTYPES[est.compute_dtype]
    return Sequential(*layers, dtype=dtype, seed=seed, compute_dtype=compute)


def build_optimizer(est, model):
    """The optimizer named by `est.optimizer` over `model`'s parameters."""
    params, lr = model.parameters(), float(est.learning_rate_init)
    if est.optimizer == "sgd":
        return optim.SGD(params, lr=lr, momentum=float(est.momentum),
                         nesterov=bool(est.nesterov) and est.momentum > 0)
    if est.optimizer in ("adam", "adamw"):
        return OPTIMIZERS[est.optimizer](params, lr=lr,
                                         betas=(float(est.beta_1), float(est.beta_2)),
                                         eps=float(est.epsilon))
    return OPTIMIZERS[est.optimizer](params, lr=lr)


def build_schedule(est, optimizer):
    """The learning-rate schedule over max_iter epochs (None: constant)."""
    epochs = int(est.max_iter)
    if est.schedule in (None, "constant"):
        return None
    if est.schedule == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    if est.schedule == "step":
        return lr_scheduler.StepLR(optimizer, max(1, epochs // 3), 0.1)
    if est.schedule == "exponential":
        return lr_scheduler.ExponentialLR(optimizer, 0.01 ** (1.0 / epochs))
    return lr_scheduler.InverseTimeLR(optimizer, 10.0 / epochs)


def build_trainer(est, model, optimizer, n_samples, epochs, seed, incremental):
    """The Trainer of one fit (incremental: partial_fit's, without a stopping rule): alpha and
    l1 as an elastic-net penalty, max_norm, ema, the tol rule or early_stopping."""
    batch = min(200 if est.batch_size == "auto" else int(est.batch_size), n_samples)
    penalty = None
    if est.alpha or est.l1:
        penalty = regularization.ElasticNet(l1=float(est.l1), l2=float(est.alpha) / batch)
    stopping = None
    if not incremental:
        if est.early_stopping:
            monitor = "val_loss" if est.early_stopping_metric == "loss" or \
                est._loss == "mse" else "val_accuracy"
        else:
            monitor = "train_loss"
        stopping = EarlyStopping(monitor, patience=int(est.n_iter_no_change),
                                 min_delta=float(est.tol))
    return Trainer(model, optimizer, loss=est._loss, batch_size=batch,
                   epochs=epochs, schedule=build_schedule(est, optimizer),
                   regularization=penalty,
                   constraint=regularization.MaxNorm(float(est.max_norm))
                   if est.max_norm is not None else None,
                   early_stopping=stopping, ema=est.ema, seed=seed,
                   progress=bool(est.verbose), monitor=False,
                   gap_threshold=float("inf"), shuffle=bool(est.shuffle),
                   compute_dtype=DTYPES[est.compute_dtype][1])
