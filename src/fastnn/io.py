"""Model files and checkpoints: one .npz archive of arrays plus JSON metadata, never a pickle.

    fnn.save(model, "model.npz")                  # or model.save("model.npz")
    model = fnn.load("model.npz")
    fnn.save_checkpoint("run.npz", model, optimizer, extra={"epoch": 7})
    model, optimizer, extra = fnn.load_checkpoint("run.npz")

The format (version 1) is a zip archive of .npy entries, the layout of numpy.savez:
    __metadata__            0-d unicode array holding a JSON object:
                                format "fastnn", format_version 1, fastnn_version, dtype,
                                compute_dtype ("float32" or "bfloat16"; absent in files written
                                before it, which load as "float32"), seed,
                                training (the model's mode), layers: [{type, config, state}] (the
                                layer's class name, layer.config(), layer.get_extra_state(); and
                                "frozen", the names of its frozen parameters, when there are any),
                                optimizer (null or {type, defaults, param_groups, state}),
                                extra (null or the caller's JSON object)
    model/<i>.<name>        the arrays of model.state_dict(): parameters and BatchNorm buffers
    optimizer/<j>/<name>    optimizer state arrays of model parameter j (momentum buffers, moments)
    extra/<k>               arrays that were values inside `extra`
Inside the JSON, an array stored as an entry appears as {"__ndarray__": "<entry name>"}; the
optimizer's parameter groups name parameters by their index in model.parameters().

Reading never unpickles and never trusts a size it has not checked: the zip directory and every
entry's .npy header are checked against each other and against the metadata (its structure, types
and the array shapes its layers imply) before anything is allocated, so a file with object arrays
(pickles), lying sizes or a declared architecture its arrays do not match is refused unread; each
entry is then decompressed a chunk at a time up to exactly its declared size, straight into the
model's arrays, and its values checked (finite; variances and averages of squares >= 0).

Writes are atomic: the archive goes to a temporary file in the target's directory, is flushed
and fsynced, then renamed over the target; if anything fails the temporary file is removed and
an existing target is untouched. A file written over keeps its permissions, and a save removes
the temporary files of its target that killed processes left behind.
"""
import io

from . import _save
from ._load import Checkpoint, _Reader
from ._save import ARRAY_REF, FORMAT, FORMAT_VERSION, METADATA, OPTIMIZERS  # noqa: F401
from .layers import LAYERS  # noqa: F401
from .model import Sequential


# -- writing ---------------------------------------------------------------------------------

def save(model, path, optimizer=None, extra=None):
    """Write `model` (architecture, dtype, compute dtype, parameters, BatchNorm statistics,
    Dropout stream positions) to `path` as a fastnn .npz file; with `optimizer` and `extra`, a checkpoint (see
    save_checkpoint). `path` (str or os.PathLike) is used as given: no suffix is added."""
    _check_model(model)
    _save.write(model, path, optimizer, extra)


def to_bytes(model, optimizer=None, extra=None):
    """The bytes save(model, path, optimizer, extra) would write: a fastnn .npz file in memory
    (read it back with from_bytes)."""
    _check_model(model)
    return _save.to_bytes(model, optimizer, extra)


def from_bytes(data):
    """Checkpoint(model, optimizer, extra) from the bytes of a fastnn file, checked as
    load_checkpoint checks a file."""
    with _Reader(io.BytesIO(bytes(data))) as reader:
        model = reader.model()
        return Checkpoint(model, reader.optimizer(model), reader.extra())


def save_checkpoint(path, model, optimizer=None, extra=None):
    """Write everything needed to resume a run: the model (as save does), the optimizer (its
    class, defaults, parameter groups with their hyperparameters, and its per-parameter state:
    momentum buffers, moments, step counts) and `extra`.

    extra: a dict of JSON values (str keys; str, int, float including nan/inf, bool, None, lists,
    tuples, dicts, NumPy scalars) in which NumPy arrays of numbers may appear as values anywhere:
    those are stored as entries of the archive and come back as arrays. Tuples come back as lists.
    load_checkpoint returns it as Checkpoint.extra.
    """
    save(model, path, optimizer=optimizer, extra=extra)


def _check_model(model):
    if not isinstance(model, Sequential):
        raise TypeError(f"fastnn.save: expected a Sequential, got {type(model).__name__}")


# -- reading ---------------------------------------------------------------------------------

def load(path):
    """Rebuild the model saved in `path` (a file from save, Sequential.save or save_checkpoint;
    the optimizer and extra parts of a checkpoint are ignored). Raises ValueError, naming the
    path, for a file that is not a fastnn file, is truncated or corrupted, holds pickled
    objects, comes from a newer format version, or does not match its own architecture."""
    with _Reader(path) as reader:
        return reader.model()


def load_checkpoint(path):
    """Read a file written by save_checkpoint: Checkpoint(model, optimizer, extra), with the
    optimizer rebuilt as the same class bound to the loaded model's parameters (None if the file
    has none) and extra as saved (None if none), its arrays restored."""
    with _Reader(path) as reader:
        model = reader.model()
        return Checkpoint(model, reader.optimizer(model), reader.extra())
