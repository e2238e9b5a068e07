"""fastnn.sklearn.load: an estimator back from the .npz file `est.save(path)` wrote."""
import numpy as np

from .. import io
from ..callbacks import History
from ._base import _BaseMLP
from ._classifier import MLPClassifier
from ._regressor import MLPRegressor

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
