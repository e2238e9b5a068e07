"""MLPClassifier: softmax cross-entropy over one output per class, labels of any kind."""
import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import column_or_1d

from ._base import _BaseMLP
from ._params import ATTRIBUTES_DOC, PARAMETERS_DOC


class MLPClassifier(ClassifierMixin, _BaseMLP):
    __doc__ = ("""Multilayer perceptron classifier (softmax cross-entropy), trained by fastnn.

    Labels may be strings, integers or booleans, two classes or more; the network has one
    output per class (also for two). class_weight and sample_weight weight each sample's loss.
""" + PARAMETERS_DOC + """    class_weight : None, "balanced" or dict {label: weight}, default=None
        Weights of the classes' losses; "balanced" is n_samples / (n_classes * count).
""" + ATTRIBUTES_DOC + """    classes_ : the class labels, sorted
""")

    # Its public home: pickles, reprs and type(est).__module__ name fastnn.sklearn.
    __module__ = "fastnn.sklearn"
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
