"""fnn.augment.RandomFlipCrop: against a slow per-image reference, determinism for a seed, and in
the Trainer (labels untouched, checkpoints continue the draws)."""
import numpy as np
import pytest

import fastnn as fnn
from fastnn.augment import RandomFlipCrop


def reference(X, image_shape, flips, dy, dx, p):
    """One image at a time: pad with zeros, crop at (p + dy, p + dx), then mirror the width."""
    C, H, W = image_shape
    out = np.empty_like(X)
    for k in range(X.shape[0]):
        image = np.pad(X[k].reshape(C, H, W), ((0, 0), (p, p), (p, p)))
        crop = image[:, p + dy[k]:p + dy[k] + H, p + dx[k]:p + dx[k] + W]
        out[k] = (crop[:, :, ::-1] if flips[k] else crop).ravel()
    return out


@pytest.mark.parametrize("image_shape, padding", [((3, 8, 8), 2), ((1, 5, 7), 3), ((2, 3, 1), 1),
                                                  ((4, 6), 0), ((3, 5, 4), 6)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_the_per_image_reference(image_shape, padding, dtype, rng):
    augment = RandomFlipCrop(image_shape, crop_padding=padding, seed=7)
    C, H, W = augment.image_shape
    X = rng.standard_normal((37, C * H * W)).astype(dtype)
    draws = RandomFlipCrop(image_shape, crop_padding=padding, seed=7).draws(37)
    out = augment(X)
    assert out.dtype == dtype and out.shape == X.shape
    np.testing.assert_array_equal(out, reference(X, augment.image_shape, *draws, padding))
    if padding:
        assert draws[1].min() >= -padding and draws[1].max() <= padding
    # both flips and several shifts occur
    assert 0 < draws[0].sum() < 37
    assert len(set(zip(draws[1], draws[2]))) > 1 or padding == 0


def test_non_contiguous_integer_and_in_place_input(rng):
    augment = RandomFlipCrop((2, 4, 4), crop_padding=1, seed=3)
    draws = RandomFlipCrop((2, 4, 4), crop_padding=1, seed=3).draws(5)
    wide = rng.integers(0, 255, (5, 64)).astype(np.uint8)
    X = wide[:, ::2]  # non-contiguous, integers: computed in float64
    out = augment(X)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, reference(X.astype(np.float64), (2, 4, 4), *draws, 1))
    Y = rng.standard_normal((6, 32)).astype(np.float32)
    expected = RandomFlipCrop((2, 4, 4), crop_padding=1, seed=4)(Y.copy())
    same = RandomFlipCrop((2, 4, 4), crop_padding=1, seed=4)
    assert same(Y, out=Y) is Y
    np.testing.assert_array_equal(Y, expected)


def test_same_seed_same_batches_and_each_batch_new_draws(rng):
    X = rng.standard_normal((16, 3 * 6 * 6))
    a, b = RandomFlipCrop((3, 6, 6), seed=1), RandomFlipCrop((3, 6, 6), seed=1)
    first, second = a(X), a(X)
    np.testing.assert_array_equal(first, b(X))
    np.testing.assert_array_equal(second, b(X))
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, RandomFlipCrop((3, 6, 6), seed=2)(X))
    c = RandomFlipCrop((3, 6, 6), seed=99)
    c.set_state(a.get_state())  # the stream continues from a saved position
    np.testing.assert_array_equal(c(X), b(X))


def test_flip_only_and_crop_only():
    X = np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 12)  # two 1x3x4 images
    out = RandomFlipCrop((1, 3, 4), flip=True, crop_padding=0, seed=0)(X)
    for k in range(2):
        image = X[k].reshape(3, 4)
        assert np.array_equal(out[k].reshape(3, 4), image) or \
            np.array_equal(out[k].reshape(3, 4), image[:, ::-1])
    out = RandomFlipCrop((1, 3, 4), flip=False, crop_padding=1, seed=0)(X)
    # a shift keeps the values in order and fills zeros: every nonzero value is an input value
    assert set(out[0][out[0] != 0]) <= set(X[0])


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(image_shape=(3, 32)), None, None),
    (dict(image_shape=(3, 0, 4)), ValueError, "image_shape"),
    (dict(image_shape=5), ValueError, "image_shape"),
    (dict(image_shape=(1, 2, 3, 4)), ValueError, "image_shape"),
    (dict(image_shape=(3, 4, 4), crop_padding=-1), ValueError, "crop_padding"),
    (dict(image_shape=(3, 4, 4), crop_padding=1.5), ValueError, "crop_padding"),
    (dict(image_shape=(3, 4, 4), flip="yes"), TypeError, "flip must be True or False"),
    (dict(image_shape=(3, 4, 4), seed=-1), ValueError, "seed"),
])
def test_bad_arguments_are_refused(kwargs, error, match):
    if error is None:
        assert RandomFlipCrop(**kwargs).image_shape == (1, 3, 32)
        return
    with pytest.raises(error, match=match):
        RandomFlipCrop(**kwargs)


def test_bad_batches_are_refused(rng):
    augment = RandomFlipCrop((1, 3, 3))
    with pytest.raises(ValueError, match=r"expected a batch of shape \(N, 9\)"):
        augment(np.zeros((4, 8)))
    with pytest.raises(ValueError, match="expected a batch"):
        augment(np.zeros(9))
    with pytest.raises(TypeError, match="real numbers"):
        augment(np.array([["a"] * 9]))
    with pytest.raises(ValueError, match="out must be"):
        augment(np.zeros((2, 9)), out=np.zeros((2, 9), np.float32))


def test_in_the_trainer_labels_untouched_validation_plain_and_resume(tmp_path, backend, rng):
    X = rng.random((48, 2 * 4 * 4)).astype(np.float32)
    y = rng.integers(0, 3, 48)
    seen = []

    class Recording(RandomFlipCrop):
        def __call__(self, X, out=None):
            result = super().__call__(X, out=out)
            seen.append(result.copy())
            return result

    def make():
        model = fnn.Sequential(fnn.Dense(32, 16, activation="relu"), fnn.Dense(16, 3), seed=0)
        return model, fnn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    model, opt = make()
    augment = Recording((2, 4, 4), crop_padding=1, seed=5)
    trainer = fnn.Trainer(model, opt, batch_size=16, epochs=2, progress=False, augment=augment,
                          checkpoint=tmp_path / "run.npz")
    X_before, y_before = X.copy(), y.copy()
    trainer.fit(X, y, validation_data=(X, y))
    np.testing.assert_array_equal(X, X_before)  # the data set itself is not modified
    np.testing.assert_array_equal(y, y_before)
    assert len(seen) == 6 and augment.step == 6  # training batches only
    # the batches the model saw are the augmented rows of the shuffled batches
    order = np.random.default_rng(0).permutation(48)
    replay = RandomFlipCrop((2, 4, 4), crop_padding=1, seed=5)
    np.testing.assert_array_equal(seen[0], replay(X[order[:16]]))

    # an uninterrupted 3-epoch run equals 2 epochs + resume for the third
    full_model, full_opt = make()
    fnn.Trainer(full_model, full_opt, batch_size=16, epochs=3, progress=False,
                augment=RandomFlipCrop((2, 4, 4), crop_padding=1, seed=5)).fit(X, y)
    resumed_model, resumed_opt = make()
    resumed = fnn.Trainer(resumed_model, resumed_opt, batch_size=16, epochs=3, progress=False,
                          augment=RandomFlipCrop((2, 4, 4), crop_padding=1, seed=5))
    resumed.resume(tmp_path / "run.npz").fit(X, y)
    for p, q in zip(full_model.parameters(), resumed_model.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


def test_the_trainer_checks_the_augments_shape_before_training(rng):
    model = fnn.Sequential(fnn.Dense(32, 3), seed=0)
    opt = fnn.optim.SGD(model.parameters(), lr=0.1)
    before = model.state_dict()
    with pytest.raises(ValueError, match="takes 27 features per sample"):
        fnn.Trainer(model, opt, progress=False,
                    augment=RandomFlipCrop((3, 3, 3))).fit(rng.random((8, 32)),
                                                           rng.integers(0, 3, 8))
    for key, array in model.state_dict().items():
        np.testing.assert_array_equal(array, before[key])
    with pytest.raises(TypeError, match="augment must be None or a callable"):
        fnn.Trainer(model, opt, augment="flip")


# -- the kernel and its twin -------------------------------------------------------------------

from fastnn import _kernels  # noqa: E402

needs_compiled = pytest.mark.skipif(_kernels.CYTHON is None,
                                    reason="the compiled backend is not built")


def shifts(rng, n, H, W):
    return (rng.random(n) < 0.5, rng.integers(-H, H + 1, n), rng.integers(-W, W + 1, n))


@pytest.mark.parametrize("image_shape", [(1, 1, 1), (3, 7, 5), (2, 1, 9), (1, 13, 2), (3, 32, 32)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 3, 17])
@pytest.mark.backend_independent
@needs_compiled
def test_flip_crop_kernel_equals_its_twin_and_the_reference(image_shape, dtype, n):
    rng = np.random.default_rng(n)
    C, H, W = image_shape
    X = rng.standard_normal((n, C * H * W)).astype(dtype)
    X[0, 0] = -0.0
    flips, dy, dx = shifts(rng, n, H, W)
    compiled = _kernels.CYTHON.flip_crop(X, flips, dy, dx, image_shape=image_shape)
    plain = _kernels.NUMPY.flip_crop(X, flips, dy, dx, image_shape=image_shape)
    assert compiled.dtype == plain.dtype == dtype
    np.testing.assert_array_equal(compiled.view(np.uint8), plain.view(np.uint8))  # bit for bit
    p = int(max(np.abs(dy).max(), np.abs(dx).max()))
    np.testing.assert_array_equal(plain, reference(X, image_shape, flips, dy, dx, p))
    for kernels in (_kernels.CYTHON, _kernels.NUMPY):  # in place
        Y = X.copy()
        assert kernels.flip_crop(Y, flips, dy, dx, image_shape=image_shape, out=Y) is Y
        np.testing.assert_array_equal(Y, plain)


@pytest.mark.backend_independent
@needs_compiled
def test_flip_crop_takes_non_contiguous_input_and_refuses_what_it_cannot_take():
    rng = np.random.default_rng(0)
    wide = rng.standard_normal((5, 2 * 3 * 4 * 2))
    X = wide[:, ::2]  # non-contiguous float64
    flips = np.array([1, 0, 1, 0, 1], np.uint8)
    dy, dx = np.array([1, -1, 0, 3, -3], np.int32), np.array([0, 2, -4, 4, 1])
    results = [k.flip_crop(X, flips, dy, dx, image_shape=(2, 3, 4))
               for k in (_kernels.CYTHON, _kernels.NUMPY)]
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0],
                                  reference(np.ascontiguousarray(X), (2, 3, 4), flips, dy, dx, 4))
    for kernels in (_kernels.CYTHON, _kernels.NUMPY):
        with pytest.raises(TypeError, match="X must be a float32 or float64 array"):
            kernels.flip_crop(X.astype(np.int64), flips, dy, dx, image_shape=(2, 3, 4))
        with pytest.raises(ValueError, match="X must be"):
            kernels.flip_crop(X, flips, dy, dx, image_shape=(2, 3, 5))
        with pytest.raises(TypeError, match="flips must be"):
            kernels.flip_crop(X, flips[:4], dy, dx, image_shape=(2, 3, 4))
        with pytest.raises(TypeError, match="dx must be an integer vector"):
            kernels.flip_crop(X, flips, dy, dx.astype(float), image_shape=(2, 3, 4))
        with pytest.raises(ValueError, match=r"dy must lie in \[-3, 3\]"):
            kernels.flip_crop(X, flips, dy * 2, dx, image_shape=(2, 3, 4))
        with pytest.raises(TypeError, match="out must have dtype float64"):
            kernels.flip_crop(X, flips, dy, dx, image_shape=(2, 3, 4),
                              out=np.empty((5, 24), np.float32))
