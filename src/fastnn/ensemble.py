"""Ensembles of trained models."""


class Ensemble:
    """Averages the predicted class probabilities of several models (independent seeds, or
    checkpoints of one run loaded with fastnn.load)."""

    def __init__(self, models):
        if isinstance(models, (str, bytes)) or not hasattr(models, "__iter__"):
            raise TypeError("Ensemble: models must be a list of trained models, got "
                            f"{type(models).__name__}")
        self.models = list(models)
        if not self.models:
            raise ValueError("Ensemble: models must hold at least one model")
        for i, m in enumerate(self.models):
            if not callable(getattr(m, "predict_proba", None)):
                raise TypeError(f"Ensemble: models[{i}] is a {type(m).__name__}, not a model "
                                "with predict_proba (e.g. a fastnn.Sequential)")

    def predict_proba(self, X):
        return sum(m.predict_proba(X) for m in self.models) / len(self.models)

    def predict(self, X):
        return self.predict_proba(X).argmax(axis=1)
