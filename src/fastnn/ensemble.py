"""Ensembles of trained models."""


class Ensemble:
    """Averages the predicted class probabilities of several models (independent seeds, or
    checkpoints of one run loaded with fastnn.load)."""

    def __init__(self, models):
        self.models = list(models)
        if not self.models:
            raise ValueError("Ensemble needs at least one model")

    def predict_proba(self, X):
        return sum(m.predict_proba(X) for m in self.models) / len(self.models)

    def predict(self, X):
        return self.predict_proba(X).argmax(axis=1)
