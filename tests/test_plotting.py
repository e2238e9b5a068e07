"""History.plot and the smoothing it draws (matplotlib, the `plot` extra)."""
import sys
import warnings

import numpy as np
import pytest

import fastnn as fnn
from fastnn.plotting import smooth

pytestmark = pytest.mark.backend_independent

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def a_history(classification=True):
    r = np.random.default_rng(0)
    history = fnn.History()
    history.loss = list(2.0 * np.exp(-np.arange(60) / 20) + 0.1 * r.random(60))
    history.reg_loss = [0.01] * 60
    history.epochs = [1, 2, 3, 4, 5]
    if classification:
        history.train_accuracy = [0.5, 0.7, 0.8, 0.9, 0.95]
        history.val_accuracy = [0.45, 0.65, 0.75, 0.8, 0.82]
    else:
        history.train_accuracy = history.val_accuracy = [None] * 5
    return history


def assert_png(path):
    import matplotlib.image

    data = open(path, "rb").read()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 5000  # a drawn figure, not an empty file or a blank image
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[:2] == (400, 700)  # 7 x 4 inches at 100 dpi
    assert image.std() > 0.01  # not one flat colour
    return image


def test_plot_writes_two_pngs(tmp_path):
    pytest.importorskip("matplotlib")
    paths = a_history().plot(tmp_path / "run")
    assert paths == (f"{tmp_path / 'run'}-loss.png", f"{tmp_path / 'run'}-accuracy.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-accuracy.png", "run-loss.png"]
    loss, accuracy = (assert_png(p) for p in paths)
    assert loss.shape == accuracy.shape and not np.array_equal(loss, accuracy)


def test_plot_of_a_string_path_and_a_real_run(tmp_path):
    pytest.importorskip("matplotlib")
    r = np.random.default_rng(1)
    X = r.standard_normal((60, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    model = fnn.Sequential(fnn.Dense(5, 8, activation="relu"), fnn.Dense(8, 2), seed=0)
    trainer = fnn.Trainer(model, fnn.optim.SGD(model.parameters(), lr=0.1), batch_size=16,
                          epochs=3, progress=False, monitor=False)
    history = trainer.fit(X, y, validation_data=(X, y))
    paths = history.plot(str(tmp_path / "sub"))
    for path in paths:
        assert_png(path)


def test_plot_of_a_regression_history_writes_both_files(tmp_path):
    pytest.importorskip("matplotlib")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an accuracy figure with nothing to draw may say so
        paths = a_history(classification=False).plot(tmp_path / "reg")
    assert_png(paths[0])
    assert open(paths[1], "rb").read()[:8] == PNG_SIGNATURE


def test_plot_of_a_regression_history_warns_nothing(tmp_path):
    pytest.importorskip("matplotlib")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a_history(classification=False).plot(tmp_path / "reg")


def test_plot_of_an_empty_history(tmp_path):
    pytest.importorskip("matplotlib")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        paths = fnn.History().plot(tmp_path / "empty")
    for path in paths:
        assert open(path, "rb").read()[:8] == PNG_SIGNATURE


def moving_average(values, window):
    return [sum(values[max(0, i - window + 1):i + 1]) / len(values[max(0, i - window + 1):i + 1])
            for i in range(len(values))]


@pytest.mark.parametrize("window", [1, 2, 3, 7, 100])
def test_smooth_is_the_trailing_moving_average(window):
    values = [float(v) for v in np.random.default_rng(window).standard_normal(20)]
    np.testing.assert_allclose(smooth(values, window), moving_average(values, window),
                               rtol=1e-12, atol=1e-12)


def test_smooth_small_cases():
    np.testing.assert_allclose(smooth([1, 2, 3, 4], 2), [1, 1.5, 2.5, 3.5])
    np.testing.assert_allclose(smooth([4.0], 5), [4.0])
    assert smooth([], 3).shape == (0,)
    np.testing.assert_array_equal(smooth([5, 5, 5], 1), [5, 5, 5])


def test_plot_without_matplotlib_names_the_extra(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"`plot` extra") as info:
        a_history().plot(tmp_path / "run")
    assert 'pip install "fastnn[plot]"' in str(info.value)
    assert list(tmp_path.iterdir()) == []
