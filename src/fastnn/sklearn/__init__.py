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
try:  # the extra's check, before the modules that import scikit-learn
    import sklearn.base  # noqa: F401
except ImportError:  # pragma: no cover - depends on the environment
    raise ImportError("fastnn.sklearn needs scikit-learn, which fastnn installs with its "
                      "`sklearn` extra: pip install \"fastnn[sklearn]\" (from a clone: "
                      "pip install \".[sklearn]\")") from None

from ._base import EXPECTED_FAILED_CHECKS
from ._classifier import MLPClassifier
# ESTIMATORS and the parameter tables are importable from here too (not in __all__).
from ._load import ESTIMATORS, load  # noqa: F401
from ._params import ACTIVATIONS, OPTIMIZERS, SCHEDULES  # noqa: F401
from ._regressor import MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor", "load", "EXPECTED_FAILED_CHECKS"]
