"""The crafted-file corpus (tests/crafted_files.py): every bad file is refused with a ValueError
naming it, quickly and in bounded memory, before anything in it is trusted; no file runs code.

The bounds are generous (2 s, 50 MB of Python and NumPy allocations, measured by tracemalloc)
and still far below what the files ask for (up to 3.6 GB): they catch a reader that allocates
or decompresses what a file declares before checking it. Reading files does not depend on the
backend, so these tests run once.
"""
import sys
import time
import tracemalloc

import numpy as np
import pytest

import fastnn as fnn

sys.path.insert(0, __import__("os").path.dirname(__file__))
import crafted_files as crafted  # noqa: E402

pytestmark = pytest.mark.backend_independent

SECONDS = 2.0
PEAK_BYTES = 50 * 2**20
# value checks of optimizer arrays happen when the optimizer is read: load_checkpoint only
OPTIMIZER_VALUES = {"negative_second_moment", "nan_moment"}


def refused(reader, path, match=None):
    """Call reader(path) under tracemalloc: it must raise a ValueError naming `path` within the
    time and memory bounds. Returns the message."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ValueError) as info:
            reader(path)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    if match is not None:
        assert match in message, message
    assert elapsed < SECONDS, f"{reader.__name__}({path.name}) took {elapsed:.2f} s to refuse"
    assert peak < PEAK_BYTES, (f"{reader.__name__}({path.name}) allocated {peak / 2**20:.0f} MB "
                               "before refusing")
    return message


@pytest.mark.parametrize("name", sorted(crafted.MODEL_CASES))
def test_crafted_model_files_are_refused_fast_in_bounded_memory(name, tmp_path):
    path = crafted.MODEL_CASES[name](tmp_path)
    readers = [fnn.load_checkpoint] if name in OPTIMIZER_VALUES else [fnn.load,
                                                                      fnn.load_checkpoint]
    for reader in readers:
        refused(reader, path)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("name, match", [
    ("huge_declared_dense", "'model/0.W' has shape (6, 16) and dtype float32, expected shape "
                            "(30000, 30000)"),
    ("stored_entry_claims_gigabytes", "claim"),
    ("deflated_entry_claims_gigabytes", "zip bomb"),
    ("zip_bomb", "zip bomb"),
    ("overlapping_entries", "claim"),
    ("entry_inflates_past_its_size", "'model/0.b' holds more data than its header and zip "
                                     "sizes declare"),
    ("duplicated_entry", "'model/0.W' appears twice"),
    ("huge_metadata", "more than the 16777216 a fastnn file's metadata may have"),
    ("bzip2_entry", "method 12"),
    ("bad_checksum", "'model/0.W' fails its checksum"),
    ("nan_weight", "entry 'model/0.W' holds NaN or infinite values; it must hold finite numbers"),
    ("negative_running_var", "entry 'model/1.running_var' holds negative values; it must hold "
                             "numbers >= 0"),
    ("negative_second_moment", "'optimizer/0/exp_avg_sq' holds negative values"),
    ("training_not_bool", "invalid metadata 'training': 'yes'; expected true or false"),
    ("seed_negative", "invalid metadata 'seed': -1; expected null or a non-negative integer"),
    ("in_features_str", "invalid layer 0 (Dense) config 'in_features': '6'; expected a positive "
                        "integer"),
    ("dropout_p_str", "invalid layer 2 (Dropout) config 'p': '0.25'; expected a number"),
    ("dropout_step_negative", "invalid layer 2 (Dropout) state 'step': -1; expected a "
                              "non-negative integer"),
    ("dropout_state_unknown_key", "unknown entry 'mask'; the layer keeps ['index', 'seed', "
                                  "'step']"),
    ("optimizer_unknown_key", "invalid optimizer: unknown keys ['lookahead']"),
    ("optimizer_unknown_hyperparameter", "invalid optimizer param group 0: unknown "
                                         "hyperparameter 'foo'; Adam takes"),
    ("optimizer_lr_infinite", "invalid optimizer param group 0 'lr': inf; expected a finite "
                              "number"),
    ("optimizer_amsgrad_int", "invalid optimizer param group 0 'amsgrad': 1; expected true or "
                              "false"),
    ("optimizer_step_negative", "invalid optimizer state 'step' of parameter 0: -3; expected a "
                                "non-negative integer step count"),
    ("optimizer_state_unknown_key", "unknown entry 'momentum_buffer' for parameter 0; Adam "
                                    "keeps"),
])
def test_the_refusal_says_what_is_wrong(name, match, tmp_path):
    path = crafted.MODEL_CASES[name](tmp_path)
    refused(fnn.load_checkpoint, path, match)


def test_truncations_at_many_offsets_are_refused(tmp_path):
    paths = crafted.truncations(tmp_path)
    assert len(paths) > 30
    for path in paths:
        refused(fnn.load_checkpoint, path)


def test_the_good_checkpoint_loads_and_its_arrays_are_the_saved_ones(tmp_path):
    """The corpus' starting point is accepted, so each refusal above is about its one change;
    and the streaming reader returns the saved bytes."""
    path = crafted.checkpoint(tmp_path)
    model, optimizer, extra = fnn.load_checkpoint(path)
    entries = crafted.members(path)
    import io
    for key, array in model.state_dict().items():
        saved = np.lib.format.read_array(io.BytesIO(entries[f"model/{key}"]))
        np.testing.assert_array_equal(array, saved, strict=True)
    assert extra["epoch"] == 2 and list(extra["curve"]) == [0.0, 1.0, 2.0]
    assert optimizer.state_dict()["state"][0]["step"] == 2


def test_a_deflated_big_endian_fortran_order_file_loads(tmp_path):
    """What the reader accepts beyond what fastnn writes: deflated entries (weights compress
    little, so well under the bomb bound), big-endian and Fortran-order arrays."""
    path = crafted.checkpoint(tmp_path)
    entries = crafted.members(path)
    reference = fnn.load(path)
    import io
    out = []
    for key, raw in entries.items():
        if key.startswith("model/"):
            array = np.lib.format.read_array(io.BytesIO(raw))
            array = np.asfortranarray(array.astype(array.dtype.newbyteorder(">")))
            raw = crafted.npy(array)
        out.append(crafted.Member(key, raw, method=8))
    changed = crafted.write_zip(tmp_path / "deflated.npz", out)
    model = fnn.load(changed)
    for key, array in reference.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[key], array, strict=True)


@pytest.mark.parametrize("name, match", [
    ("idx_gzip_bomb", "at least 65536 unexpected bytes after the IDX data"),
    ("idx_gzip_trailing_junk", "at least 65536 unexpected bytes after the IDX data"),
    ("idx_huge_dims", "truncated IDX data"),
    ("idx_gzip_huge_dims", "truncated IDX data"),
    ("idx_lying_dims", "truncated IDX data"),
])
def test_crafted_idx_files_are_refused_fast_in_bounded_memory(name, match, tmp_path):
    refused(fnn.data.load_idx, crafted.IDX_CASES[name](tmp_path), match)


def test_mnist_labels_above_9_are_refused(tmp_path):
    directory = crafted.mnist_labels_above_9(tmp_path)
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte: labels must lie in \[0, 9\].*"
                                         "found 255"):
        fnn.data.load_mnist(directory)
