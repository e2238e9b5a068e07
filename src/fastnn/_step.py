"""The compiled training step: Sequential.train_step's forward, loss and backward in one call.

On the compiled backend, when every layer provides its own compiled-step op and the loss is
softmax cross-entropy or the multiclass hinge loss, train_step runs a Plan of
fastnn._kernels.step instead of calling each layer from Python. A layer type provides an op with
two methods (Dense, the activation layers, Dropout and BatchNorm have them):

    _step_held()                       -> the objects its op is made of (arrays, options)
    _step_op(step, n, features, previous, need_dX)
                                       -> (op or None, its output, the saved state it leaves)

`step` is the namespace of the compiled step's op classes (fastnn._kernels.STEP_OPS): each is a
subclass of fastnn._kernels.op.Op defined in its layer's kernel module (step.DenseOp in
_kernels/dense.pyx, step.DropoutOp in _kernels/dropout.pyx, ...), so a new layer type adds its
op beside its kernels and nothing here or in step.pyx changes. _step_op makes the op that does
the layer's forward and backward on a batch of n rows of `features` columns from `previous` (the
op before's output, None for the batch), with the layer's own parameters, gradients and buffers
and the same C-level kernels as its forward and backward, GEMMs included
(fastnn._kernels.gemm). It sets in the layer what its own passes would leave there (outputs,
masks, batch statistics) and returns it. It returns op None when the layer passes its input
through, NotImplemented when it cannot be compiled for this batch. A class that overrides
forward or backward of the class that defines _step_op is not compiled (its op would not be
what it does); nor is a layer without one.
So the numbers are those of the layer-by-layer step, and after a step every layer holds what its
own forward and backward would have left.

This module keeps the plans: one per batch size, loss and compute dtype (a model keeps the plans of the last
few), each kept until anything it holds changes: a layer option (activation, dropout p,
batchnorm momentum or eps), or any array it holds (a parameter or gradient array replaced, a
buffer grown by a larger batch elsewhere).
Anything else (the NumPy backend, other layers or losses) takes the layer-by-layer path. An
inference-mode forward leaves its own (fresh) arrays in the layers' saved state; the model then
marks its plan `stale`, and the next step puts the plan's arrays back in the layers without
rebuilding it.
"""
from operator import is_

from . import _backend, _kernels, losses
from .layers import bf16_compute, first_trainable, fused_activations

_LOSSES = {losses.softmax_cross_entropy: True, losses.multiclass_hinge: False}
_module = None
_KEEP = 4  # plans kept per model: batch sizes seen recently


def step_module():
    """fastnn._kernels.step, or None when the compiled extension is not built."""
    global _module
    if _module is None:
        try:
            from ._kernels import step
        except ImportError:
            step = False
        _module = step
    return _module or None


def _compilable(layer):
    """Whether the layer's step op stands for what it does: the class that defines _step_op
    also defines (or inherits unchanged) the forward and backward this layer runs."""
    cls = type(layer)
    for base in cls.__mro__:
        if "_step_op" in vars(base):
            return cls.forward is base.forward and cls.backward is base.backward
    return False


class CompiledStep:
    """A model's plans, one per batch size (the last _KEEP used), each rebuilt when what it
    holds changes. An epoch whose last batch is shorter uses two plans, built once."""

    __slots__ = ("plans", "plan", "current", "layers", "compilable", "parameters", "stale",
                 "penalizes")

    def __init__(self):
        self.plans = {}  # (n, loss, bf16) -> (plan, held, left, parameters, penalizes)
        self.plan = self.current = self.layers = self.parameters = None
        self.compilable = False
        # Whether the current plan's penalty (Plan.run's l1, l2) covers every weight a
        # fastnn.regularization penalty of the model would: each trainable Dense W.
        self.penalizes = False
        self.stale = False  # an inference forward has replaced what the plan left in the layers

    def plan_for(self, model, n, loss):
        """The plan for a batch of n rows, or None when this step cannot be compiled. A
        bfloat16 model's plans are its layers' bf16 ops (bf16_compute, as in its forward),
        kept apart from its float32 plans."""
        if _backend.get_backend() != "cython" or loss not in _LOSSES:
            return None
        bf16 = model.compute_dtype == "bfloat16"
        compute = bf16_compute.set(bf16)
        try:
            return self._plan_for(model, n, loss, bf16)
        finally:
            bf16_compute.reset(compute)

    def _plan_for(self, model, n, loss, bf16):
        layers = model.layers
        if self.layers != layers:  # (the layer objects compare by identity)
            self.layers = list(layers)
            self.compilable = all(map(_compilable, layers))
            self.plans.clear()
            self.plan = self.current = None
        if not self.compilable or step_module() is None:
            return None
        held = self._held(model)
        key = (n, loss, bf16)
        entry = self.plans.get(key)
        if entry is None or len(held) != len(entry[1]) or not all(map(is_, held, entry[1])):
            self.plan = self.current = None
            self.plans.pop(key, None)
            plan, left, penalized = _build(model, n, loss)
            parameters = [p for p in model.parameters() if p.requires_grad]
            weights = [p._data for p in parameters if p.is_weight]
            penalizes = len(weights) == len(penalized) and all(map(is_, weights, penalized))
            # Building may have grown buffers that other plans hold: those fail their check and
            # are rebuilt when next used.
            entry = (plan, self._held(model), left, parameters, penalizes)
            if len(self.plans) >= _KEEP:
                self.plans.pop(next(iter(self.plans)))
            self.plans[key] = entry
            self.stale = False
        elif self.stale or self.current != key:
            # Another plan (or an inference forward) left its arrays in the layers: put back
            # this plan's, which is what its own run will leave there.
            for layer, attributes in entry[2]:
                layer._leave(**attributes)
            self.stale = False
        self.current, self.plan, self.parameters, self.penalizes = (key, entry[0], entry[3],
                                                                    entry[4])
        return self.plan

    def _held(self, model):
        held = [model._dscores._array]
        for layer in self.layers:
            held += layer._step_held()
        return held


def _build(model, n, loss):
    """(the Plan, the (layer, saved state) its ops left in the layers, the weight arrays its
    penalty covers); (None, [], []) when a layer cannot be compiled for this batch or no layer
    has an op."""
    step, op_classes = step_module(), _kernels.STEP_OPS
    ops, left, penalized = [], [], []
    features = model.in_features
    previous = None  # the output of the last op; None: the batch X, set at each run
    # Backward stops at the first layer with a trainable parameter (its op is the first to run
    # backward, without dX); frozen Dense parameters get no gradient GEMM.
    trainable = first_trainable(model.layers)
    first_backward = None
    fused = fused_activations(model.layers)  # run in the Dense before them: no op of their own
    for index, layer in enumerate(model.layers):
        if index - 1 in fused:
            continue
        if first_backward is None and index >= trainable:
            first_backward = len(ops)
        if index in fused:
            made = layer._step_op(op_classes, n, features, previous, index > trainable,
                                  epilogue=fused[index])
        else:
            made = layer._step_op(op_classes, n, features, previous, index > trainable)
        if made is NotImplemented:
            return None, [], []
        op, previous, attributes = made
        left.append((layer, attributes))
        if op is not None:
            ops.append(op)
            penalized += op.penalized()
            features = previous.shape[1]
    if not ops:
        return None, [], []
    if first_backward is None:
        first_backward = len(ops)
    return step.Plan(ops, model._dscores.rows(n), _LOSSES[loss], first_backward), left, penalized
