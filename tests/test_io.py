"""Model files and checkpoints: round trips, resuming, atomic writes, refused files."""
import json
import os
import pathlib
import pickle
import stat
import warnings
import zipfile

import numpy as np
import pytest

import fastnn as fnn
from fastnn import io as fio

DTYPES = ("float32", "float64")


def every_layer_model(dtype="float32", seed=0):
    """Every layer type, activations both fused into a Dense and standalone."""
    return fnn.Sequential(
        fnn.Dense(6, 8, activation="relu", init="he_uniform"),
        fnn.BatchNorm(8, eps=1e-4, momentum=0.2),
        fnn.Dropout(0.25),
        fnn.Dense(8, 8, init=0.1), fnn.LeakyReLU(0.05),      # fused into the Dense
        fnn.PReLU(8, init=0.1),
        fnn.Maxout(8, 6, pieces=3, init="glorot"),
        fnn.ELU(0.5), fnn.Sigmoid(), fnn.Tanh(), fnn.ReLU(), fnn.Identity(),  # standalone
        fnn.Dense(6, 6, activation="elu", alpha=0.7),
        fnn.Dense(6, 6, activation="tanh"),
        fnn.Dense(6, 6, activation="sigmoid"),
        fnn.Dense(6, 4, activation="leaky_relu", alpha=0.2),
        dtype=dtype, seed=seed)


def small_model(dtype="float32", seed=0):
    return fnn.Sequential(fnn.Dense(6, 16, activation="relu"), fnn.BatchNorm(16),
                          fnn.Dropout(0.3), fnn.Dense(16, 4), dtype=dtype, seed=seed)


def batch(t, dtype, n=16):
    r = np.random.default_rng(1000 + t)
    return r.standard_normal((n, 6)).astype(dtype), r.integers(0, 4, n)


def train(model, optimizer, steps, start=0):
    for t in range(start, start + steps):
        X, y = batch(t, model.dtype)
        _, dscores = fnn.losses.softmax_cross_entropy(model.forward(X, training=True), y)
        model.zero_grad()
        model.backward(dscores)
        optimizer.step()


def assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert sa[key].dtype == sb[key].dtype, key
        np.testing.assert_array_equal(sa[key], sb[key], err_msg=key, strict=True)


def entries(path):
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def metadata(path):
    return json.loads(str(entries(path)[fio.METADATA]))


def rewrite(path, replace=None, drop=(), meta=None):
    """Write the archive at `path` again with entries replaced/dropped and metadata edited
    (np.savez pickles object arrays, as a malicious file would)."""
    arrays = entries(path)
    if meta is not None:
        data = json.loads(str(arrays[fio.METADATA]))
        meta(data)
        arrays[fio.METADATA] = np.array(json.dumps(data))
    arrays.update(replace or {})
    for name in drop:
        del arrays[name]
    os.remove(path)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


# -- layer configs ---------------------------------------------------------------------------

@pytest.mark.parametrize("layer", [
    fnn.Dense(3, 4), fnn.Dense(3, 4, activation="leaky_relu", alpha=0.3, init="glorot_uniform"),
    fnn.Dense(3, 4, init=0.05, dtype="float64"), fnn.ReLU(), fnn.LeakyReLU(0.2), fnn.ELU(2.0),
    fnn.Sigmoid(), fnn.Tanh(), fnn.Identity(), fnn.PReLU(5, init=0.1), fnn.Maxout(3, 2, pieces=4),
    fnn.Dropout(0.4, seed=7), fnn.BatchNorm(5, eps=1e-3, momentum=0.3, dtype="float64"),
], ids=repr)
def test_config_is_json_and_rebuilds_an_equivalent_layer(layer):
    config = layer.config()
    assert json.loads(json.dumps(config)) == config
    rebuilt = type(layer)(**config)
    assert rebuilt.config() == config
    assert repr(rebuilt) == repr(layer)
    assert [(p.name, p.shape, p.dtype) for p in rebuilt.parameters()] == \
        [(p.name, p.shape, p.dtype) for p in layer.parameters()]


def test_config_of_a_callable_init_is_none_and_rebuilds():
    def init(shape, rng):
        return rng.standard_normal(shape) * 0.5
    for layer in (fnn.Dense(3, 4, init=init), fnn.Maxout(3, 2, init=init)):
        assert layer.config()["init"] is None
        type(layer)(**layer.config())  # the default init instead; weights come from the file


def test_dropout_extra_state_is_the_mask_stream_position():
    layer = fnn.Dropout(0.5, seed=3)
    X = np.ones((4, 10), dtype=np.float32)
    layer.forward(X, training=True)
    state = layer.get_extra_state()
    assert state == {"seed": 3, "index": 0, "step": 1}
    expected = layer.forward(X, training=True).copy()
    other = fnn.Dropout(**layer.config())
    other.set_extra_state(state)
    np.testing.assert_array_equal(other.forward(X, training=True), expected)
    assert fnn.Dense(2, 2).get_extra_state() == {}


# -- model files -----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_every_layer_type_bit_identical(dtype, tmp_path):
    model = every_layer_model(dtype)
    train(model, fnn.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), 3)
    X, _ = batch(99, dtype, n=40)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = fnn.load(path)
    assert loaded.dtype == np.dtype(dtype) and loaded.seed == 0
    assert repr(loaded) == repr(model)
    assert [(type(l), l.config(), l.get_extra_state()) for l in loaded.layers] == \
        [(type(l), l.config(), l.get_extra_state()) for l in model.layers]
    assert_same_state(loaded, model)
    for method in ("predict", "predict_proba"):
        np.testing.assert_array_equal(getattr(loaded, method)(X), getattr(model, method)(X),
                                      strict=True)
    np.testing.assert_array_equal(loaded.forward(X, training=False),
                                  model.forward(X, training=False), strict=True)
    # the mask stream and running statistics continue: a training forward agrees too
    np.testing.assert_array_equal(loaded.forward(X, training=True),
                                  model.forward(X, training=True), strict=True)
    assert_same_state(loaded, model)


def test_training_mode_and_integer_seed_are_kept(tmp_path):
    model = small_model(seed=np.int64(5)).eval()
    fnn.save(model, tmp_path / "m.npz")
    loaded = fnn.load(tmp_path / "m.npz")
    assert loaded.training is False and loaded.seed == 5
    unseeded = small_model(seed=None)
    fnn.save(unseeded, tmp_path / "u.npz")
    loaded = fnn.load(tmp_path / "u.npz")
    assert loaded.seed is None
    assert loaded.layers[2].get_extra_state() == unseeded.layers[2].get_extra_state()


EMULATED = "ignore:compute_dtype='bfloat16' runs by emulation:RuntimeWarning"


@pytest.mark.filterwarnings(EMULATED)
def test_the_compute_dtype_is_recorded_and_restored(tmp_path):
    model = small_model()
    model.compute_dtype = "bfloat16"
    optimizer = fnn.optim.Adam(model.parameters(), lr=0.01)
    train(model, optimizer, 2)
    X, _ = batch(99, "float32", n=40)
    fnn.save_checkpoint(tmp_path / "ck.npz", model, optimizer)
    model.save(tmp_path / "m.npz")
    assert metadata(tmp_path / "m.npz")["compute_dtype"] == "bfloat16"
    assert {a.dtype for a in entries(tmp_path / "ck.npz").values() if a.ndim} == \
        {np.dtype(np.float32)}  # the parameters (master weights) stay float32
    for loaded in (fnn.load(tmp_path / "m.npz"), fnn.load_checkpoint(tmp_path / "ck.npz").model):
        assert loaded.compute_dtype == "bfloat16" and loaded.dtype == np.float32
        assert_same_state(loaded, model)
        for method in ("predict", "predict_proba"):
            np.testing.assert_array_equal(getattr(loaded, method)(X), getattr(model, method)(X),
                                          strict=True)
    # float32 models record theirs too; a file written before compute_dtype loads as float32
    path = tmp_path / "f.npz"
    small_model().save(path)
    assert metadata(path)["compute_dtype"] == "float32"
    rewrite(path, meta=lambda m: m.pop("compute_dtype"))
    assert fnn.load(path).compute_dtype == "float32"


@pytest.mark.parametrize("value, match", [
    ("float16", "invalid metadata 'compute_dtype': 'float16'; expected 'float32' or 'bfloat16'"),
    (16, "invalid metadata 'compute_dtype': 16"),
    (None, "invalid metadata 'compute_dtype': None"),
])
def test_an_unknown_compute_dtype_is_refused(value, match, tmp_path):
    path = tmp_path / "m.npz"
    small_model().save(path)
    rewrite(path, meta=lambda m: m.update(compute_dtype=value))
    with pytest.raises(ValueError, match=match) as info:
        fnn.load(path)
    assert str(info.value).startswith(f"{path}: ")


def test_bfloat16_with_float64_parameters_is_refused_before_anything_is_built(tmp_path,
                                                                            monkeypatch):
    path = tmp_path / "m.npz"
    small_model("float64").save(path)
    rewrite(path, meta=lambda m: m.update(compute_dtype="bfloat16"))
    monkeypatch.setattr(fnn.Sequential, "__init__", None)  # building anything would fail
    with pytest.raises(ValueError, match="'compute_dtype': 'bfloat16' needs float32 parameters, "
                                         "the file declares dtype 'float64'") as info:
        fnn.load(path)
    assert str(info.value).startswith(f"{path}: ")


@pytest.mark.parametrize("kind", [str, pathlib.Path])
def test_paths_as_str_and_pathlib(kind, tmp_path):
    model = small_model()
    path = kind(tmp_path / "model")  # used as given: no suffix is added
    fnn.save(model, path)
    assert os.listdir(tmp_path) == ["model"]
    assert_same_state(fnn.load(path), model)
    opt = fnn.optim.Adam(model.parameters())
    train(model, opt, 1)
    fnn.save_checkpoint(path, model, opt, extra={"epoch": 1})
    checkpoint = fnn.load_checkpoint(path)
    assert_same_state(checkpoint.model, model)
    assert checkpoint.extra == {"epoch": 1}


def test_rebuilding_does_not_warn_about_init(tmp_path):
    with pytest.warns(UserWarning, match="symmetry"):
        model = fnn.Sequential(fnn.Dense(3, 4, init=fnn.init.constant(0.5)),
                               fnn.Maxout(4, 2, init="zeros"), fnn.Dense(2, 2, init="zeros"))
    model.save(tmp_path / "m.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = fnn.load(tmp_path / "m.npz")
    # the unnamed callable was saved as None (the default init); the weights come from the file
    assert loaded.layers[0].init == "xavier" and loaded.layers[1].init == "zeros"
    assert_same_state(loaded, model)


def test_the_file_is_a_plain_npz_with_json_metadata(tmp_path):
    model = small_model("float64")
    opt = fnn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    train(model, opt, 2)
    path = tmp_path / "ck.npz"
    fnn.save_checkpoint(path, model, opt, extra={"epoch": 2, "best": np.arange(3.0)})
    arrays = entries(path)  # numpy reads it without pickling
    assert all(a.dtype != object for a in arrays.values())
    meta = metadata(path)
    assert meta["format"] == "fastnn" and meta["format_version"] == 1
    assert meta["fastnn_version"] == fnn.__version__
    assert meta["dtype"] == "float64" and meta["seed"] == 0 and meta["training"] is True
    assert [layer["type"] for layer in meta["layers"]] == ["Dense", "BatchNorm", "Dropout",
                                                         "Dense"]
    assert meta["layers"][2]["state"] == {"seed": 0, "index": 2, "step": 2}
    assert meta["optimizer"]["type"] == "SGD"
    assert meta["optimizer"]["param_groups"][0]["params"] == [0, 1, 2, 3, 4, 5]
    assert meta["extra"] == {"epoch": 2, "best": {"__ndarray__": "extra/0"}}
    model_keys = {f"model/{k}" for k in model.state_dict()}
    assert "model/1.running_var" in model_keys
    optimizer_keys = {f"optimizer/{i}/momentum_buffer" for i in range(6)}
    assert set(arrays) == {fio.METADATA, "extra/0"} | model_keys | optimizer_keys
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(arrays[f"model/{key}"], value, strict=True)


def test_save_refuses_what_the_format_cannot_describe(tmp_path):
    class Custom(fnn.Dense):
        pass
    path = tmp_path / "m.npz"
    with pytest.raises(TypeError, match="Sequential"):
        fnn.save(fnn.Dense(2, 2), path)
    with pytest.raises(TypeError, match="layer 0 is a Custom"):
        fnn.save(fnn.Sequential(Custom(2, 2)), path)
    model, other = small_model(), small_model()
    with pytest.raises(ValueError, match="not the model's"):
        fnn.save_checkpoint(path, model, fnn.optim.SGD(other.parameters()))
    assert not path.exists() and os.listdir(tmp_path) == []


# -- checkpoints -----------------------------------------------------------------------------

OPTIMIZERS = {
    "sgd_momentum": lambda ps: fnn.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True,
                                             weight_decay=1e-3),
    "sgd_groups": lambda ps: fnn.optim.SGD(
        [{"params": ps[3:], "lr": 0.02}, {"params": ps[:3], "momentum": 0.5}], lr=0.05,
        momentum=0.9, dampening=0.1),
    "adam": lambda ps: fnn.optim.Adam(ps, lr=1e-2, betas=(0.8, 0.99), amsgrad=True),
    "adamw": lambda ps: fnn.optim.AdamW(ps, lr=1e-2, weight_decay=0.05),
    "rmsprop": lambda ps: fnn.optim.RMSprop(ps, lr=1e-3, centered=True, momentum=0.9,
                                            weight_decay=1e-4),
    "adagrad": lambda ps: fnn.optim.Adagrad(ps, lr=0.05, lr_decay=1e-3,
                                            initial_accumulator_value=0.1),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_resume_equals_the_uninterrupted_run(name, dtype, tmp_path):
    """N steps, checkpoint, M more steps == the same N + M steps without stopping, bit for bit:
    parameters, BatchNorm statistics, Dropout masks and optimizer state all continue."""
    model = small_model(dtype, seed=3)
    optimizer = OPTIMIZERS[name](model.parameters())
    train(model, optimizer, 5)
    path = tmp_path / "run.npz"
    fnn.save_checkpoint(path, model, optimizer, extra={"step": 5})
    train(model, optimizer, 4, start=5)  # the uninterrupted run goes on

    model2, optimizer2, extra = fnn.load_checkpoint(str(path))
    assert type(optimizer2) is type(optimizer) and extra == {"step": 5}
    assert optimizer2.param_groups[0]["params"][0] is model2.parameters()[3 if name ==
                                                                            "sgd_groups" else 0]
    train(model2, optimizer2, 4, start=extra["step"])
    assert_same_state(model2, model)
    assert model2.layers[2].step == model.layers[2].step == 9
    saved, mine = optimizer2.state_dict(), optimizer.state_dict()
    assert saved["param_groups"] == mine["param_groups"]
    assert saved["state"].keys() == mine["state"].keys()
    for i in mine["state"]:
        assert saved["state"][i].keys() == mine["state"][i].keys()
        for key, value in mine["state"][i].items():
            np.testing.assert_array_equal(saved["state"][i][key], value, strict=True)



@pytest.mark.parametrize("chosen", ["reversed", "subset"])
def test_optimizer_state_round_trips_whatever_its_parameter_order(chosen, tmp_path):
    """The optimizer numbers its parameters in its own order (state_dict), the file by their place
    in model.parameters(): an optimizer over the parameters reversed, or over some of them, comes
    back with the same state on the same parameters and goes on exactly as the original."""
    model = small_model(seed=3)
    params = model.parameters()
    optimizer = fnn.optim.Adam(params[::-1] if chosen == "reversed" else params[2:], lr=1e-2,
                               amsgrad=True)
    train(model, optimizer, 3)
    fnn.save_checkpoint(tmp_path / "run.npz", model, optimizer)
    model2, optimizer2, _ = fnn.load_checkpoint(tmp_path / "run.npz")
    place = {id(p): i for i, p in enumerate(params)}
    place2 = {id(p): i for i, p in enumerate(model2.parameters())}
    assert [place2[id(p)] for p in optimizer2.param_groups[0]["params"]] == \
        [place[id(p)] for p in optimizer.param_groups[0]["params"]]
    saved, mine = optimizer2.state_dict(), optimizer.state_dict()
    assert saved["param_groups"] == mine["param_groups"]
    assert saved["state"].keys() == mine["state"].keys()
    for i, state in mine["state"].items():
        assert saved["state"][i].keys() == state.keys()
        for key, value in state.items():
            np.testing.assert_array_equal(saved["state"][i][key], value, strict=True)
    train(model, optimizer, 2, start=3)
    train(model2, optimizer2, 2, start=3)
    assert_same_state(model2, model)

def test_resume_with_a_schedule_and_a_generator_in_extra(tmp_path):
    """The pattern the Trainer uses: scheduler state and the shuffling generator's state in
    `extra`, arrays in `extra` too."""
    def run(model, optimizer, scheduler, rng, epochs, lrs):
        for _ in range(epochs):
            train(model, optimizer, 1, start=int(rng.integers(100)))
            scheduler.step()
            lrs.append(optimizer.param_groups[0]["lr"])

    model = small_model()
    optimizer = fnn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = fnn.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    rng, lrs = np.random.default_rng(7), []
    run(model, optimizer, scheduler, rng, 3, lrs)
    fnn.save_checkpoint(tmp_path / "ck.npz", model, optimizer, extra={
        "epoch": 3, "rng": rng.bit_generator.state, "schedule": scheduler.state_dict(),
        "history": {"lr": list(lrs), "loss": [np.float32(0.5), float("nan"), float("inf")]},
        "best_state": model.state_dict()})
    run(model, optimizer, scheduler, rng, 3, lrs)

    model2, optimizer2, extra = fnn.load_checkpoint(tmp_path / "ck.npz")
    scheduler2 = fnn.optim.lr_scheduler.StepLR(optimizer2, step_size=2, gamma=0.5)
    scheduler2.load_state_dict(extra["schedule"])
    rng2 = np.random.default_rng()
    rng2.bit_generator.state = extra["rng"]
    lrs2 = extra["history"]["lr"]
    run(model2, optimizer2, scheduler2, rng2, 3, lrs2)
    assert lrs2 == lrs
    assert_same_state(model2, model)
    loss = extra["history"]["loss"]
    assert loss[0] == 0.5 and np.isnan(loss[1]) and loss[2] == np.inf
    assert extra["best_state"].keys() == model.state_dict().keys()
    assert extra["best_state"]["1.running_var"].dtype == np.float32


def test_extra_round_trips_json_values_and_arrays(tmp_path):
    extra = {"int": 2**70, "float": 0.1, "bool": True, "none": None, "str": "é ∑",
             "list": [1, [2.5, "x"]], "tuple": (1, 2), "np": [np.int64(3), np.float64(0.25),
                                                             np.bool_(False)],
             "arrays": {"f32": np.arange(6, dtype=np.float32).reshape(2, 3),
                        "i8": np.array([-1, 2], dtype=np.int8), "b": np.array([True, False]),
                        "scalar": np.array(3.5), "empty": np.zeros((0, 4))}}
    model = small_model()
    fnn.save_checkpoint(tmp_path / "ck.npz", model, extra=extra)
    loaded = fnn.load_checkpoint(tmp_path / "ck.npz")
    assert loaded.optimizer is None
    got = loaded.extra
    assert {k: got[k] for k in ("int", "float", "bool", "none", "str", "list")} == \
        {k: extra[k] for k in ("int", "float", "bool", "none", "str", "list")}
    assert got["tuple"] == [1, 2] and got["np"] == [3, 0.25, False]
    for key, array in extra["arrays"].items():
        np.testing.assert_array_equal(got["arrays"][key], array, strict=True)


@pytest.mark.parametrize("extra, match", [
    ({1: "a"}, "not a str"),
    ({"a": np.array([object()])}, "dtype object"),
    ({"a": {1, 2}}, "cannot store a set"),
    ({"a": {"__ndarray__": "model/0.W"}}, "reserved"),
    ([1, 2], "must be a dict"),
])
def test_extra_that_would_not_come_back_is_refused(extra, match, tmp_path):
    path = tmp_path / "ck.npz"
    small_model().save(path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match=match):
        fnn.save_checkpoint(path, small_model(), extra=extra)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["ck.npz"]


def test_load_takes_a_checkpoint_and_load_checkpoint_a_model_file(tmp_path):
    model = small_model()
    optimizer = fnn.optim.Adam(model.parameters())
    train(model, optimizer, 2)
    fnn.save_checkpoint(tmp_path / "ck.npz", model, optimizer, extra={"epoch": 1})
    assert_same_state(fnn.load(tmp_path / "ck.npz"), model)
    model.save(tmp_path / "m.npz")
    checkpoint = fnn.load_checkpoint(tmp_path / "m.npz")
    assert isinstance(checkpoint, fnn.Checkpoint)
    assert checkpoint.optimizer is None and checkpoint.extra is None
    assert_same_state(checkpoint.model, model)
    # fnn.save with an optimizer is a checkpoint too
    fnn.save(model, tmp_path / "s.npz", optimizer=optimizer)
    assert type(fnn.load_checkpoint(tmp_path / "s.npz").optimizer) is fnn.optim.Adam


# -- atomic writes ---------------------------------------------------------------------------

@pytest.fixture
def old_file(tmp_path):
    path = tmp_path / "ck.npz"
    small_model(seed=1).save(path)
    return path, path.read_bytes()


def assert_untouched(path, before):
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == [path.name]  # no temporary file left behind
    fnn.load(path)


def test_a_failing_rename_leaves_the_old_file(old_file, monkeypatch):
    path, before = old_file

    def fail(src, dst):
        assert os.path.dirname(src) == os.path.dirname(os.path.abspath(dst))  # same directory
        assert os.path.getsize(src) > 0
        raise OSError("disk gone")
    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk gone"):
        small_model(seed=2).save(path)
    assert_untouched(path, before)


@pytest.mark.parametrize("error", [OSError("no space left on device"), KeyboardInterrupt()])
def test_a_write_failing_midway_leaves_the_old_file(error, old_file, monkeypatch):
    path, before = old_file
    real, calls = np.lib.format.write_array, []

    def write_array(fp, array, *args, **kwargs):
        calls.append(array.shape)
        if len(calls) == 4:
            fp.write(b"\0" * 100)
            raise error
        return real(fp, array, *args, **kwargs)
    monkeypatch.setattr(np.lib.format, "write_array", write_array)
    model = small_model(seed=2)
    with pytest.raises(type(error)):
        fnn.save_checkpoint(path, model, fnn.optim.SGD(model.parameters()))
    assert len(calls) == 4
    monkeypatch.undo()
    assert_untouched(path, before)


def test_a_failing_fsync_leaves_the_old_file_and_the_data_is_synced_before_the_rename(
        old_file, monkeypatch):
    path, before = old_file
    events, real_fsync, real_replace = [], os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"),
                                                     real_replace(a, b))[1])
    small_model(seed=2).save(path)
    assert events[:2] == ["fsync", "replace"]
    assert_same_state(fnn.load(path), small_model(seed=2))

    before = path.read_bytes()

    def fail(fd):
        raise OSError("I/O error")
    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="I/O error"):
        small_model(seed=3).save(path)
    assert_untouched(path, before)


def test_a_failed_first_write_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "replace", lambda a, b: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError):
        small_model().save(tmp_path / "new.npz")
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_the_new_file_gets_ordinary_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        small_model().save(tmp_path / "m.npz")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(os.stat(tmp_path / "m.npz").st_mode) == 0o644


# -- refused files ---------------------------------------------------------------------------

class Payload:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


@pytest.mark.parametrize("where", ["model/0.W", fio.METADATA, "extra/0", "smuggled"])
def test_a_pickle_is_refused_and_never_runs(where, tmp_path):
    marker = tmp_path / "pwned"
    payload = np.array([Payload(marker)], dtype=object)
    pickle.loads(pickle.dumps(payload))  # the payload is live
    assert marker.exists()
    marker.unlink()

    path = tmp_path / "evil.npz"
    fnn.save_checkpoint(path, small_model(), extra={"a": np.zeros(2)})
    rewrite(path, replace={where: payload})
    for reader in (fnn.load, fnn.load_checkpoint):
        with pytest.raises(ValueError) as info:
            reader(path)
        assert str(info.value) == (f"{path}: entry {where!r} holds Python objects (a pickle); "
                                   "fastnn files never contain pickles and this one is refused "
                                   "unread")
    assert not marker.exists()


def test_a_bare_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npz"
    path.write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(ValueError, match="not a fastnn file"):
        fnn.load(path)
    assert not marker.exists()


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_a_truncated_file_is_refused(fraction, old_file):
    path, before = old_file
    path.write_bytes(before[:int(len(before) * fraction)])
    with pytest.raises(ValueError, match=r"(truncated or corrupted|not an \.npz)") as info:
        fnn.load(path)
    assert str(path) in str(info.value)


def test_corrupted_bytes_are_refused(old_file):
    """Every byte of the archive flipped in turn: an error naming the file, or (for bytes the
    zip format does not check, such as timestamps) the very same model."""
    path, before = old_file
    reference = fnn.load(path)
    X, _ = batch(0, "float32")
    expected = reference.forward(X, training=False)
    loaded = 0
    for position in range(0, len(before), 7):
        corrupted = bytearray(before)
        corrupted[position] ^= 0x5A
        path.write_bytes(bytes(corrupted))
        try:
            model = fnn.load(path)
        except ValueError as error:
            assert str(error).startswith(f"{path}: ")
            continue
        loaded += 1
        assert_same_state(model, reference)
        np.testing.assert_array_equal(model.forward(X, training=False), expected)
    assert loaded < len(before) // 7 // 2


def test_random_bytes_and_empty_files_are_refused(tmp_path):
    path = tmp_path / "x.npz"
    for content in (os.urandom(2000), b"", b"PK\x03\x04" + os.urandom(2000)):
        path.write_bytes(content)
        with pytest.raises(ValueError) as info:
            fnn.load(path)
        assert str(path) in str(info.value)
    with pytest.raises(FileNotFoundError):
        fnn.load(tmp_path / "missing.npz")


def test_files_that_are_not_fastnn_files_are_refused(tmp_path):
    path = tmp_path / "x.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="not a fastnn file"):
        fnn.load(path)
    np.savez(path, W=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="not a fastnn file.*no '__metadata__'"):
        fnn.load(path)
    np.savez(path, __metadata__=np.array('{"format": "keras"}'))
    with pytest.raises(ValueError, match="not a fastnn file"):
        fnn.load(path)
    np.savez(path, __metadata__=np.array("not json"))
    with pytest.raises(ValueError, match="corrupted"):
        fnn.load(path)
    np.savez(path, __metadata__=np.zeros(3))
    with pytest.raises(ValueError, match="not a fastnn file"):
        fnn.load(path)
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(ValueError, match="not a fastnn file"):
        fnn.load(tmp_path / "a.npy")


def test_a_future_format_version_is_refused(tmp_path):
    path = tmp_path / "m.npz"
    small_model().save(path)
    rewrite(path, meta=lambda m: m.update(format_version=2))
    with pytest.raises(ValueError) as info:
        fnn.load(path)
    assert str(info.value) == (f"{path}: written by a newer fastnn (format 2); this fastnn "
                               "reads format 1")
    rewrite(path, meta=lambda m: m.update(format_version="1"))
    with pytest.raises(ValueError, match="unknown format version '1'"):
        fnn.load(path)


def test_an_unknown_layer_type_is_refused(tmp_path):
    path = tmp_path / "m.npz"
    small_model().save(path)
    rewrite(path, meta=lambda m: m["layers"][1].update(type="LayerNorm"))
    with pytest.raises(ValueError, match="layer 1 has unknown type 'LayerNorm'") as info:
        fnn.load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("edit, match", [
    (dict(drop=["model/0.b"]), r"missing \['model/0.b'\]"),
    (dict(replace={"model/9.W": np.zeros(2)}), r"unexpected \['model/9.W'\]"),
    (dict(replace={"model/0.W": np.zeros((6, 15), np.float32)}), r"'model/0.W' has shape \(6, 15\)"),
    (dict(replace={"model/0.W": np.zeros((6, 16))}), "dtype float64, expected .* float32"),
    (dict(meta=lambda m: m["layers"][0]["config"].update(out_features=-3)), "layer 0 .*Dense"),
    (dict(meta=lambda m: m["layers"][0]["config"].update(colour="red")), "layer 0 .*colour"),
    (dict(meta=lambda m: m.update(layers="Dense")), "invalid metadata 'layers': 'Dense'"),
    (dict(meta=lambda m: m.update(dtype="float16")), "invalid metadata 'dtype': 'float16'"),
    (dict(meta=lambda m: m["optimizer"].update(type="Lion")), "unknown optimizer type 'Lion'"),
    (dict(meta=lambda m: m["optimizer"]["param_groups"][0].update(lr=-1.0)),
     "malformed metadata.*lr"),
    (dict(meta=lambda m: m["optimizer"]["param_groups"][0].update(params=[0, 99])),
     "out of range"),
    (dict(replace={"optimizer/1/momentum_buffer": np.zeros(3, np.float32)}),
     "'optimizer/1/momentum_buffer' has shape"),
    (dict(drop=["optimizer/1/momentum_buffer"]), "missing"),
])
def test_inconsistent_files_are_refused(edit, match, tmp_path):
    path = tmp_path / "ck.npz"
    model = small_model()
    optimizer = fnn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    train(model, optimizer, 1)
    fnn.save_checkpoint(path, model, optimizer)
    rewrite(path, **edit)
    with pytest.raises(ValueError, match=match) as info:
        fnn.load_checkpoint(path)
    assert str(info.value).startswith(f"{path}: ")


def test_loading_draws_no_weights_and_fills_every_parameter(tmp_path, monkeypatch):
    # The rebuilt layers' parameters are uninitialized (fastnn.init.deferred): no numbers are
    # drawn for arrays the file then overwrites, and every one of them is overwritten.
    model = fnn.Sequential(fnn.Dense(6, 5, activation="relu"), fnn.BatchNorm(5),
                           fnn.Maxout(5, 4, pieces=2), fnn.PReLU(4), fnn.Dense(4, 3), seed=1)
    path = tmp_path / "m.npz"
    fnn.save(model, path)

    def no_draws(*args, **kwargs):
        raise AssertionError("load drew random weights")

    monkeypatch.setattr(fnn.init._Random, "fill", no_draws)
    monkeypatch.setattr(fnn.init._Random, "__call__", no_draws)
    loaded = fnn.load(path)
    monkeypatch.undo()
    for key, array in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[key], array, err_msg=key)
    # after the load, layers are initialized as usual again
    assert np.any(fnn.Dense(6, 5).W.data != 0)


def test_deferred_init_is_per_thread():
    import threading
    built = []
    with fnn.init.deferred():
        thread = threading.Thread(target=lambda: built.append(fnn.Dense(50, 40, seed=0)))
        thread.start()
        thread.join()
    np.testing.assert_array_equal(built[0].W.data, fnn.Dense(50, 40, seed=0).W.data)
