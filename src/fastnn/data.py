"""Datasets and splits."""
import numpy as np


def load_digits():
    """The 8x8 handwritten digits (1797 images, 64 features with values 0-16, 10 classes).

    The data set is the one scikit-learn ships (from the UCI "Optical Recognition of Handwritten
    Digits" collection, E. Alpaydin and C. Kaynak); it is read from scikit-learn's installed files,
    never downloaded. Needs the `datasets` extra: pip install "fastnn[datasets]".
    Returns (X float64 (1797, 64), y int64 (1797,)).
    """
    try:
        from sklearn.datasets import load_digits as sklearn_load_digits
    except ImportError:
        raise ImportError("the digits data set needs scikit-learn, which fastnn installs with its "
                          "`datasets` extra: pip install \"fastnn[datasets]\"") from None
    digits = sklearn_load_digits()
    return digits.data.astype(np.float64), digits.target.astype(np.int64)


def stratified_split(y, fraction, seed=None):
    """Indices (train, held_out) with `fraction` of every class held out (at least one each).

    Classes keep their proportions in both parts; the order within each part is shuffled.
    """
    y = np.asarray(y)
    if not 0 < fraction < 1:
        raise ValueError(f"stratified_split: fraction must lie in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(y.shape[0])
    sorted_labels = y[order]
    by_class = np.argsort(sorted_labels, kind="stable")
    classes, starts, counts = np.unique(sorted_labels[by_class], return_index=True,
                                        return_counts=True)
    if np.any(counts < 2):
        raise ValueError("stratified_split: every class needs at least 2 samples")
    n_held = np.clip(np.round(counts * fraction).astype(int), 1, counts - 1)
    rank = np.arange(y.shape[0]) - np.repeat(starts, counts)
    held = rank < np.repeat(n_held, counts)
    held_idx, train_idx = order[by_class[held]], order[by_class[~held]]
    return rng.permutation(train_idx), rng.permutation(held_idx)
