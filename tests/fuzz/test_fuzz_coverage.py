"""Every public entry point has a fuzz strategy (issue 16): the arguments of the data loaders,
model files, gradient checking, EMA, early stopping, penalties, initializers, sanity checks, the
search distributions and the backend switches, drawn by hypothesis; random and damaged bytes as
model and IDX files. A call either works or raises a ValueError/TypeError (OSError for a path
that is not there) whose message names the argument; it never crashes, hangs, returns non-finite
numbers or leaves the model changed.

test_every_public_entry_point_has_a_strategy lists what fastnn exports and fails when one of
them is neither in COVERED (with the test that fuzzes it) nor in EXCLUDED (with the reason)."""
import gzip
import importlib
import inspect
import io
import math
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastnn as fnn
from fastnn import data as fdata
from fastnn import io as fio
from fastnn import regularization as reg
from fastnn import sanity, search
from fastnn.gradient_check import gradcheck
from fastnn.optim import lr_scheduler as sched

from . import test_fuzz_api, test_fuzz_entry_points
from .profiles import fuzz_settings
from .test_fuzz_api import ODD, finite_number

pytestmark = pytest.mark.backend_independent


def model(seed=0):
    return fnn.Sequential(fnn.Dense(4, 5, activation="relu"), fnn.Dense(5, 3), seed=seed)


def model64():
    return fnn.Sequential(fnn.Dense(4, 5, activation="tanh"), fnn.Dense(5, 3), dtype="float64",
                          seed=0)


def same_state(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def refused_naming(error, name):
    assert isinstance(error, (ValueError, TypeError)), f"{type(error).__name__}: {error}"
    assert name in str(error), f"the message does not name {name!r}: {error}"


def is_int(v, low):
    return finite_number(v, low) and not isinstance(v, (float, np.floating)) and \
        float(v).is_integer()


def try_call(make, name, valid, value):
    """make(value) either works (then returns what it made) or refuses naming `name`; `valid`
    says which is right: True (must work), False (must refuse) or None (either)."""
    try:
        made = make(value)
    except Exception as error:  # noqa: BLE001 -- refused_naming says which kinds are allowed
        refused_naming(error, name)
        assert valid is not True, f"{name}={value!r} refused: {error}"
        return None
    assert valid is not False, f"{name}={value!r} accepted"
    return made


# -- arguments of constructors and functions ------------------------------------------------

def _ema(v):
    ema = fnn.EMA(model(), decay=v)
    ema.update()
    with ema.applied():
        pass
    return ema


ARGUMENTS = {
    "EMA.decay": (_ema, "decay", lambda v: finite_number(v, 0, low_open=True, high=1,
                                                      high_open=True)),
    "EarlyStopping.patience": (lambda v: fnn.EarlyStopping(patience=v), "patience",
                               lambda v: is_int(v, 1) or None),
    "EarlyStopping.min_delta": (lambda v: fnn.EarlyStopping(min_delta=v), "min_delta",
                                lambda v: finite_number(v, 0) or None),
    "EarlyStopping.monitor": (lambda v: fnn.EarlyStopping(monitor=v), "monitor",
                              lambda v: False if not isinstance(v, str) else None),
    "Ensemble.models": (lambda v: fnn.Ensemble(v), "models", lambda v: False),
    "L2.lam": (lambda v: reg.L2(v)(model()), "L2", lambda v: finite_number(v, 0)),
    "L1.lam": (lambda v: reg.L1(v)(model()), "L1", lambda v: finite_number(v, 0)),
    "ElasticNet.l1": (lambda v: reg.ElasticNet(l1=v)(model()), "ElasticNet",
                      lambda v: finite_number(v, 0)),
    "ElasticNet.l2": (lambda v: reg.ElasticNet(l2=v)(model()), "ElasticNet",
                      lambda v: finite_number(v, 0)),
    "MaxNorm.c": (lambda v: reg.MaxNorm(v)(model()), "c",
                  lambda v: finite_number(v, 0, low_open=True)),
    "regularization.weights": (lambda v: reg.weights(v), "params",
                               lambda v: None if isinstance(v, (list, tuple, dict)) and not v
                               else False),
    "Maxout.pieces": (lambda v: fnn.Maxout(3, 2, pieces=v), "pieces",
                      lambda v: (True if 2 <= v <= 255 else False) if is_int(v, -10**9) else
                      False),
    "PReLU.init": (lambda v: fnn.PReLU(3, init=v), "init", lambda v: finite_number(v) or None),
    "RandomFlipCrop.crop_padding": (lambda v: fnn.augment.RandomFlipCrop((1, 4, 4),
                                                                         crop_padding=v),
                                    "crop_padding", lambda v: is_int(v, 0) or None),
    "RandomFlipCrop.image_shape": (lambda v: fnn.augment.RandomFlipCrop(v), "image_shape",
                                   lambda v: None if isinstance(v, (tuple, list)) else False),
    "stratified_split.fraction": (lambda v: fdata.stratified_split(np.arange(20) % 2, v),
                                  "fraction", lambda v: finite_number(
                                      v, 0, low_open=True, high=1, high_open=True) or None),
    "expected_initial_loss.n_classes": (lambda v: sanity.expected_initial_loss(
        "softmax_cross_entropy", v), "n_classes", lambda v: is_int(v, 2) or None),
    "log_uniform.low": (lambda v: search.log_uniform(v, 10.0), "low",
                        lambda v: finite_number(v, 0, low_open=True, high=10, high_open=True)
                        or None),
    "uniform.low": (lambda v: search.uniform(v, 10.0), "low",
                    lambda v: finite_number(v, high=10, high_open=True) or None),
    "int_uniform.low": (lambda v: search.int_uniform(v, 10), "low",
                        lambda v: None if is_int(v, -10**9) else False),
    "choice.options": (lambda v: search.choice(v), "options", lambda v: None),
    "check_init.init": (lambda v: fnn.init.check_init(v), "init", lambda v: None),
    "constant.value": (lambda v: fnn.Dense(3, 2, init=fnn.init.constant(v), dtype="float64"),
                       "value",
                       lambda v: None),
    "default_init.activation": (lambda v: fnn.init.default_init(v), "activation",
                                lambda v: None),
    "losses.get": (lambda v: fnn.losses.get(v), "loss", lambda v: False),
    "losses.weighted.sample_weight": (lambda v: fnn.losses.weighted(
        "softmax_cross_entropy", v), "sample_weight", lambda v: None),
    "set_num_threads.n": (lambda v: fnn.set_num_threads(v), "set_num_threads",
                          lambda v: is_int(v, 1)),
    "set_backend.name": (lambda v: fnn.set_backend(v), "backend",
                         lambda v: None if v in ("numpy", "cython") else False),
    "use_backend.name": (lambda v: fnn.use_backend(v).__enter__(), "backend",
                         lambda v: None if v in ("numpy", "cython") else False),
    "set_gemm_engine.name": (lambda v: fnn.set_gemm_engine(v), "set_gemm_engine",
                             lambda v: (True if v in ("openblas", "auto") else
                                        None if v == "onednn" else False)),
    "Sequential.dtype": (lambda v: fnn.Sequential(fnn.Dense(2, 2), dtype=v), "dtype",
                         lambda v: None),
    "Sequential.seed": (lambda v: fnn.Sequential(fnn.Dense(2, 2), seed=v), "seed",
                        lambda v: None),
    "Sequential.compute_dtype": (lambda v: fnn.Sequential(fnn.Dense(2, 2), compute_dtype=v),
                                 "compute_dtype", lambda v: isinstance(v, str) and
                                 v in ("float32", "bfloat16")),
    "Sequential.predict.batch_size": (lambda v: model().predict(np.ones((3, 4)), batch_size=v),
                                      "batch_size", lambda v: is_int(v, 1) or None),
    "Sequential.train_step.optimizer": (lambda v: model().train_step(
        np.ones((3, 4)), [0, 1, 2], "softmax_cross_entropy", v), "optimizer", lambda v: False),
    "Sequential.load_state_dict": (lambda v: model().load_state_dict(v), "state", lambda v: False),
    "gradcheck.num_checks": (lambda v: gradcheck(model64(), np.ones((3, 4)), [0, 1, 2],
                                                 num_checks=v, warn=False), "num_checks",
                             lambda v: is_int(v, 1) or None),
    "gradcheck.h": (lambda v: gradcheck(model64(), np.ones((3, 4)), [0, 1, 2], h=v, warn=False),
                    "h", lambda v: None if finite_number(v, 0, low_open=True) else False),
    "check_initial_loss.tolerance": (lambda v: sanity.check_initial_loss(
        model(), np.ones((6, 4)), [0, 1, 2, 0, 1, 2], tolerance=v), "tolerance",
        lambda v: None),
    "Trainer.fit.validation_data": (lambda v: fnn.Trainer(
        model(), fnn.optim.SGD(model().parameters()), progress=False, epochs=1).fit(
            np.ones((6, 4)), [0, 1, 2, 0, 1, 2], validation_data=v), "validation_data",
        lambda v: None),
}


@fuzz_settings
@given(st.sampled_from(sorted(ARGUMENTS)), ODD | st.sampled_from(
    ["he", "relu", "val_loss", "float32", "bfloat16", "numpy", "cython", "", (1, 4, 4), [3, 4],
     {}]))
def test_arguments(which, value):
    make, name, valid = ARGUMENTS[which]
    backend, threads = fnn.get_backend(), fnn.get_num_threads()
    engine = fnn.gemm_engine_info()["requested"]
    try:
        with np.errstate(all="ignore"):
            try_call(make, name, valid(value), value)
    finally:
        fnn.set_backend(backend)
        fnn.set_num_threads(threads)
        fnn.set_gemm_engine(engine)


def test_the_backend_switch_is_left_as_it_was():
    before = fnn.get_backend()
    for bad in ("", "torch", None, 3):
        with pytest.raises((ValueError, TypeError), match="backend"):
            fnn.set_backend(bad)
        assert fnn.get_backend() == before


def test_a_lambda_schedule_giving_bad_factors_is_refused_at_its_step():
    for factor in (np.nan, -1.0, np.inf, "x", None):
        opt = fnn.optim.SGD(model().parameters(), lr=0.1)
        with pytest.raises((ValueError, TypeError), match="lr_lambda|learning rate"):
            schedule = sched.LambdaLR(opt, lambda epoch, f=factor: f if epoch else 1.0)
            schedule.step()
        assert math.isfinite(opt.param_groups[0]["lr"]) and opt.param_groups[0]["lr"] >= 0


# -- files: random and damaged bytes --------------------------------------------------------

@pytest.fixture(scope="module")
def valid_file():
    m = model()
    opt = fnn.optim.Adam(m.parameters())
    m.train_step(np.ones((3, 4)), [0, 1, 2], "softmax_cross_entropy", opt)
    return fio.to_bytes(m, opt)


@fuzz_settings
@given(st.binary(max_size=600) | st.just(b"PK\x03\x04") | st.just(b"\x93NUMPY"))
def test_random_bytes_are_not_a_model(data):
    with pytest.raises(ValueError):
        fio.from_bytes(data)


@fuzz_settings
@given(st.data())
def test_damaged_model_files_are_refused(valid_file, data):
    damaged = bytearray(valid_file)
    how = data.draw(st.sampled_from(["flip", "truncate", "insert"]))
    at = data.draw(st.integers(0, len(damaged) - 1))
    if how == "flip":
        damaged[at] ^= data.draw(st.integers(1, 255))
    elif how == "truncate":
        del damaged[at:]
    else:
        damaged[at:at] = data.draw(st.binary(min_size=1, max_size=8))
    try:
        loaded = fio.from_bytes(bytes(damaged))
    except ValueError:
        return
    # A change that leaves a valid file (a byte of zip padding, say) must load the same model.
    reference = fio.from_bytes(valid_file)
    assert same_state(loaded.model.state_dict(), reference.model.state_dict())


def idx_bytes(shape, dtype_code, body):
    return struct.pack(">BBBB", 0, 0, dtype_code, len(shape)) + \
        b"".join(struct.pack(">I", n) for n in shape) + body


@fuzz_settings
@given(st.lists(st.integers(0, 70000), min_size=0, max_size=4),
       st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x07, 0xFF]),
       st.integers(-5, 5), st.booleans())
def test_idx_files_load_exactly_or_are_refused(tmp_path_factory, shape, code, extra, zipped):
    itemsize = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}.get(code, 1)
    size = int(np.prod(shape)) * itemsize  # no dimensions: one value
    if size > 1 << 22:
        shape, size = shape[:1], (shape[0] if shape else 0) * itemsize
    body = bytes(max(0, size + extra))
    raw = idx_bytes(shape, code, body)
    path = tmp_path_factory.mktemp("idx") / ("f.idx.gz" if zipped else "f.idx")
    path.write_bytes(gzip.compress(raw) if zipped else raw)
    try:
        array = fdata.load_idx(path)
    except ValueError as error:
        assert str(path) in str(error) or "IDX" in str(error) or "idx" in str(error), error
        return
    assert code in (0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E) and len(body) == size
    assert array.shape == tuple(shape)


PATHS = {
    "load": lambda v: fio.load(v), "load_checkpoint": lambda v: fio.load_checkpoint(v),
    "save": lambda v: fio.save(model(), v), "load_idx": lambda v: fdata.load_idx(v),
    "load_mnist": lambda v: fdata.load_mnist(v), "load_cifar10": lambda v: fdata.load_cifar10(v),
    "cifar10_label_names": lambda v: fdata.cifar10_label_names(v),
    "Sequential.save": lambda v: model().save(v),
    "save_checkpoint": lambda v: fio.save_checkpoint(v, model()),
}


@fuzz_settings
@given(st.sampled_from(sorted(PATHS)), st.one_of(
    st.none(), st.integers(-1, 3), st.floats(allow_nan=True), st.just(b"\x00"), st.just(""),
    st.just("/nonexistent/dir/x"), st.just("\x00"), st.just([]), st.just(io.BytesIO())))
def test_paths_are_checked(which, value):
    try:
        PATHS[which](value)
    except OSError:
        return  # a path that is not there, or cannot be written: the OS says which
    except (ValueError, TypeError) as error:
        assert any(word in str(error) for word in ("path", "directory", "file")), error
        return
    pytest.fail(f"{which}({value!r}) accepted")


def test_reading_and_fitting_leave_a_model_untouched_when_refused():
    m = model()
    before = m.state_dict()
    for call in (lambda: m.load_state_dict({"0.W": np.full((4, 5), np.nan, np.float32)}),
                 lambda: m.load_state_dict({**before, "0.W": np.ones((2, 2), np.float32)}),
                 lambda: fnn.Trainer(m, fnn.optim.SGD(m.parameters()), progress=False).fit(
                     np.full((4, 4), np.nan), [0, 1, 2, 0])):
        with pytest.raises((ValueError, TypeError)):
            call()
        assert same_state(m.state_dict(), before)


# -- the inventory ---------------------------------------------------------------------------

# entry point -> the test that fuzzes it (in this file or test_fuzz_api / _entry_points).
COVERED = {
    **{f"fastnn.optim.{n}": "test_fuzz_api.test_optimizer_hyperparameters"
       for n in ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad")},
    **{f"fastnn.optim.lr_scheduler.{n}": "test_fuzz_api.test_schedule_arguments"
       for n in ("StepLR", "ExponentialLR", "InverseTimeLR", "CosineAnnealingLR", "LinearLR")},
    "fastnn.optim.lr_scheduler.LambdaLR":
        "test_a_lambda_schedule_giving_bad_factors_is_refused_at_its_step",
    **{f"fastnn.{n}": "test_fuzz_api.test_layer_arguments"
       for n in ("Dropout", "LeakyReLU", "ELU", "ReLU", "Dense", "BatchNorm")},
    "fastnn.Maxout": "test_arguments", "fastnn.PReLU": "test_arguments",
    "fastnn.Trainer": "test_fuzz_api.test_trainer_arguments",
    "fastnn.Trainer.fit": "test_arguments",
    "fastnn.Sequential": "test_arguments",
    "fastnn.Sequential.forward": "test_fuzz_api.test_native_paths_in_a_subprocess",
    "fastnn.Sequential.predict": "test_fuzz_api.test_native_paths_in_a_subprocess",
    "fastnn.Sequential.predict_proba": "test_fuzz_api.test_native_paths_in_a_subprocess",
    "fastnn.Sequential.train_step": "test_arguments",
    "fastnn.Sequential.load_state_dict": "test_reading_and_fitting_leave_a_model_untouched_"
                                         "when_refused",
    "fastnn.Sequential.save": "test_paths_are_checked",
    **{f"fastnn.losses.{n}": "test_fuzz_api.test_native_paths_in_a_subprocess"
       for n in ("softmax_cross_entropy", "multiclass_hinge", "svm", "mse", "binary_hinge",
                 "binary_logistic")},
    "fastnn.losses.get": "test_arguments", "fastnn.losses.weighted": "test_arguments",
    **{f"fastnn.preprocessing.{n}":
       "test_fuzz_entry_points.test_preprocessing_gives_a_result_or_names_X"
       for n in ("StandardScaler", "MeanSubtraction", "PCA", "ZCAWhitening")},
    "fastnn.EMA": "test_arguments", "fastnn.EarlyStopping": "test_arguments",
    "fastnn.Ensemble": "test_arguments",
    **{f"fastnn.regularization.{n}": "test_arguments"
       for n in ("L2", "L1", "ElasticNet", "MaxNorm", "weights")},
    "fastnn.augment.RandomFlipCrop": "test_arguments",
    "fastnn.data.stratified_split": "test_arguments",
    "fastnn.data.load_idx": "test_idx_files_load_exactly_or_are_refused",
    **{f"fastnn.data.{n}": "test_paths_are_checked"
       for n in ("load_mnist", "load_cifar10", "cifar10_label_names")},
    **{f"fastnn.io.{n}": "test_paths_are_checked"
       for n in ("load", "load_checkpoint", "save", "save_checkpoint")},
    **{f"fastnn.{n}": "test_paths_are_checked"
       for n in ("load", "load_checkpoint", "save", "save_checkpoint")},
    "fastnn.io.from_bytes": "test_damaged_model_files_are_refused",
    "fastnn.gradcheck": "test_arguments",
    "fastnn.sanity.expected_initial_loss": "test_arguments",
    "fastnn.sanity.check_initial_loss": "test_arguments",
    **{f"fastnn.search.{n}": "test_arguments"
       for n in ("log_uniform", "uniform", "int_uniform", "choice")},
    **{f"fastnn.init.{n}": "test_arguments" for n in ("check_init", "constant", "default_init")},
    "fastnn.set_num_threads": "test_arguments", "fastnn.set_backend": "test_arguments",
    "fastnn.use_backend": "test_arguments", "fastnn.set_gemm_engine": "test_arguments",
}

EXCLUDED = {
    "fastnn.Sigmoid": "no arguments; its forward is fuzzed through Dense(activation='sigmoid')",
    "fastnn.Tanh": "no arguments; forward fuzzed through Dense(activation='tanh')",
    "fastnn.Identity": "no arguments", "fastnn.Activation": "base class of the activations",
    "fastnn.Layer": "abstract base class", "fastnn.optim.Optimizer": "abstract base class",
    "fastnn.optim.LBFGS": "its arguments are checked one by one in "
                          "tests/test_lbfgs.py::test_bad_arguments_are_refused",
    "fastnn.optim.lr_scheduler.LRScheduler": "abstract base class",
    "fastnn.optim.lr_scheduler.SequentialLR": "takes schedules already checked on their own; "
                                              "milestones checked in tests/test_schedules.py",
    "fastnn.Parameter": "internal building block of layers, not a user entry point",
    "fastnn.History": "a record the Trainer fills; no arguments",
    "fastnn.io.Checkpoint": "a named tuple that load_checkpoint returns",
    "fastnn.Checkpoint": "a named tuple that load_checkpoint returns",
    "fastnn.sanity.SanityResult": "a named tuple that the sanity checks return",
    "fastnn.search.SearchResult": "what random_search returns",
    **{f"fastnn.search.{n}": "the classes behind log_uniform, uniform, int_uniform and choice, "
       "whose arguments test_arguments fuzzes" for n in ("LogUniform", "Uniform", "IntUniform",
                                                          "Choice")},
    "fastnn.io.to_bytes": "takes a model, which save/from_bytes round-trips cover",
    "fastnn.Trainer.evaluate": "the same checks as fit's validation_data (test_arguments)",
    "fastnn.Trainer.resume": "its file is a checkpoint: tests/test_crafted_files.py",
    "fastnn.Sequential.backward": "its argument is the loss's dscores; the layers' own checks "
                                  "are fuzzed by test_native_paths_in_a_subprocess",
    "fastnn.Sequential.forward_backward": "train_step's first half (test_arguments)",
    "fastnn.data.load_digits": "no arguments",
    "fastnn.compiled_available": "no arguments", "fastnn.get_backend": "no arguments",
    "fastnn.get_num_threads": "no arguments", "fastnn.openmp_enabled": "no arguments",
    "fastnn.get_gemm_engine": "no arguments", "fastnn.gemm_engine_info": "no arguments",
    "fastnn.init.initialize": "internal: what layers call with checked arguments",
    "fastnn.init.deferred": "a context manager without arguments",
    "fastnn.sanity.check_overfit_small_subset": "runs a Trainer (fuzzed) over the given data",
    "fastnn.sanity.check_regularization_raises_loss": "its penalty is fuzzed (test_arguments)",
    "fastnn.sanity.sanity_checks": "the three checks above in a row",
    "fastnn.search.random_search": "needs scikit-learn; argument checks in tests/test_search.py",
    "fastnn.search.refine_space": "needs a finished search; tests/test_search.py",
    "fastnn.search.is_log_scaled": "a predicate over a distribution object",
}

MODULES = ("fastnn", "fastnn.data", "fastnn.io", "fastnn.init", "fastnn.losses", "fastnn.optim",
           "fastnn.optim.lr_scheduler", "fastnn.preprocessing", "fastnn.regularization",
           "fastnn.augment", "fastnn.sanity", "fastnn.search")
CLASSES_WITH_METHODS = ("fastnn.Sequential", "fastnn.Trainer")


def public_entry_points():
    found = set()
    for name in MODULES:
        module = importlib.import_module(name)
        names = getattr(module, "__all__", None) or [
            n for n, v in vars(module).items() if not n.startswith("_") and callable(v) and
            getattr(v, "__module__", None) == name]
        for n in names:
            value = getattr(module, n)
            if callable(value) and not inspect.ismodule(value):
                qualified = f"{name}.{n}"
                if name != "fastnn" and f"fastnn.{n}" in found | set(COVERED) | set(EXCLUDED) \
                        and getattr(fnn, n, None) is value:
                    continue  # the same object as a top-level name
                found.add(qualified)
    for cls in CLASSES_WITH_METHODS:
        obj = getattr(fnn, cls.rsplit(".", 1)[1])
        for n, v in vars(obj).items():
            if not n.startswith("_") and callable(v) and n not in ("train", "eval", "zero_grad",
                                                                   "parameters", "state_dict",
                                                                   "summary"):
                found.add(f"{cls}.{n}")
    return found


def test_every_public_entry_point_has_a_strategy():
    found = public_entry_points()
    missing = sorted(found - set(COVERED) - set(EXCLUDED))
    assert not missing, f"public entry points without a fuzz strategy or a reason: {missing}"
    assert len(found) >= 35
    modules = {"test_fuzz_api": test_fuzz_api, "test_fuzz_entry_points": test_fuzz_entry_points}
    for name, test in COVERED.items():
        owner, _, function = test.rpartition(".")
        where = vars(modules[owner]) if owner else globals()
        assert callable(where.get(function)), f"{name}: no test {test}"
