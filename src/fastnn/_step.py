"""The compiled training step: Sequential.train_step's forward, loss and backward in one call.

On the compiled backend, when every layer is a Dense, an activation layer, Dropout or BatchNorm
(as fastnn defines them, not subclasses that override forward or backward) and the loss is
softmax cross-entropy or the multiclass hinge loss, train_step runs a Plan of
fastnn._kernels.step instead of calling each layer from Python. The plan holds, per layer, the
arrays that layer's own forward and backward would use (its parameters, gradients and buffers)
and calls the same C-level kernels in the same order, GEMMs included (fastnn._kernels.gemm).
So the numbers are those of the layer-by-layer step, and after a step every layer holds what its
own forward and backward would have left (outputs, masks, batch statistics, gradients).

A plan is built for one batch size and loss (a model keeps the plans of the last few) and kept
until anything it holds changes: a layer option (activation, dropout p, batchnorm momentum or
eps), or any array it holds (a parameter or gradient array replaced, a buffer grown by a larger
batch elsewhere).
Anything else (the NumPy backend, other layers or losses) takes the layer-by-layer path. An
inference-mode forward leaves its own (fresh) arrays in the layers' saved state; the model then
marks its plan `stale`, and the next step puts the plan's arrays back in the layers without
rebuilding it.
"""
from operator import is_

from . import _backend, losses
from ._activations import CODES as ACTIVATIONS
from .layers import Activation, BatchNorm, Dense, Dropout, first_trainable

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


def _kind(layer):
    for base in (Dense, Activation, Dropout, BatchNorm):
        if isinstance(layer, base):
            own = type(layer).forward is base.forward and type(layer).backward is base.backward
            return base if own else None
    return None


def _held(layer, kind):
    """What a plan holds of `layer`: its arrays and its options, as objects (a plan is valid
    while every one of them is still the same object: see CompiledStep.plan_for)."""
    if kind is Dense:
        W, b = layer.W, layer.b
        return (W._data, W._grad, b._data, b._grad, layer._out._array, layer._dZ._array,
                layer._dX._array, layer.epilogue, W._requires_grad, b._requires_grad)
    if kind is Activation:
        out = layer._out
        return (layer.fused, layer.activation, layer.alpha, out and out._array,
                out and layer._dX._array)
    if kind is Dropout:
        out = layer._out
        return (layer.p, out and out._array, out and layer._dX._array,
                out and layer._masks._array)
    gamma, beta = layer.gamma, layer.beta
    return (gamma._data, gamma._grad, beta._data, beta._grad, layer.running_mean,
            layer.running_var, layer._mean, layer._inv_std, layer._out._array, layer._dX._array,
            layer.momentum, layer.eps, gamma._requires_grad, beta._requires_grad)


class CompiledStep:
    """A model's plans, one per batch size (the last _KEEP used), each rebuilt when what it
    holds changes. An epoch whose last batch is shorter uses two plans, built once."""

    __slots__ = ("plans", "plan", "current", "layers", "kinds", "parameters", "stale",
                 "penalizes")

    def __init__(self):
        self.plans = {}  # (n, loss) -> (plan, held, left, parameters, penalizes)
        self.plan = self.current = self.layers = self.kinds = self.parameters = None
        # Whether the current plan's penalty (Plan.run's l1, l2) covers every weight a
        # fastnn.regularization penalty of the model would: each trainable Dense W.
        self.penalizes = False
        self.stale = False  # an inference forward has replaced what the plan left in the layers

    def plan_for(self, model, n, loss):
        """The plan for a batch of n rows, or None when this step cannot be compiled."""
        if _backend.get_backend() != "cython" or loss not in _LOSSES:
            return None
        layers = model.layers
        if self.layers != layers:  # (the layer objects compare by identity)
            self.layers, self.kinds = list(layers), [_kind(layer) for layer in layers]
            self.plans.clear()
            self.plan = self.current = None
        kinds = self.kinds
        if None in kinds or (n < 2 and BatchNorm in kinds) or step_module() is None:
            return None
        held = self._held(model)
        key = (n, loss)
        entry = self.plans.get(key)
        if entry is None or len(held) != len(entry[1]) or not all(map(is_, held, entry[1])):
            self.plan = self.current = None
            self.plans.pop(key, None)
            plan, left = _build(model, n, loss, kinds)
            parameters = [p for p in model.parameters() if p.requires_grad]
            weights = [p._data for p in parameters if p.is_weight]
            penalized = [layer.W._data for layer, kind in zip(layers, kinds)
                         if kind is Dense and layer.W._requires_grad]
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
            for layer, attribute, value in entry[2]:
                setattr(layer, attribute, value)
            self.stale = False
        self.current, self.plan, self.parameters, self.penalizes = (key, entry[0], entry[3],
                                                                    entry[4])
        return self.plan

    def _held(self, model):
        held = [model._dscores._array]
        for layer, kind in zip(self.layers, self.kinds):
            held += _held(layer, kind)
        return held


def _build(model, n, loss, kinds):
    """(the Plan or None, the (layer, attribute, value) it left in the layers' saved state)."""
    step = step_module()
    ops, left = [], []

    def leave(layer, **attributes):
        for attribute, value in attributes.items():
            setattr(layer, attribute, value)
            left.append((layer, attribute, value))

    features = model.in_features
    previous = None  # the output of the last op; None: the batch X, set at each run
    first_attribute = None
    # Backward stops at the first layer with a trainable parameter (its op is the first to run
    # backward, without dX); frozen Dense parameters get no gradient GEMM.
    trainable = first_trainable(model.layers)
    first_backward = None
    for index, (layer, kind) in enumerate(zip(model.layers, kinds)):
        width = layer.out_features or features
        need_dX = index > trainable
        if first_backward is None and index >= trainable:
            first_backward = len(ops)
        if kind is Dense:
            activation, alpha = layer.epilogue
            out, dZ = layer._out.rows(n), layer._dZ.rows(n)
            dX = layer._dX.rows(n) if need_dX else None
            W, b = layer.W, layer.b
            op = step.DenseOp(layer, previous, out, dX, W.data, b.data,
                              W._grad if W.requires_grad else None,
                              b._grad if b.requires_grad else None, dZ, ACTIVATIONS[activation],
                              float(alpha))
            leave(layer, _X=previous, _A=out)
            attribute = "_X"
        elif kind is Activation and not layer.fused:
            layer._size_buffers(width)
            out = layer._out.rows(n)
            dX = layer._dX.rows(n) if need_dX else None
            op = step.ActivationOp(layer, previous, out, dX, ACTIVATIONS[layer.activation],
                                   float(layer.alpha))
            leave(layer, _A=out)
            attribute = None
        elif kind is Dropout and layer.p > 0:
            layer._size_buffers(width)
            p, threshold = _backend.drop_probability("Dropout", layer.p)
            out, mask = layer._out.rows(n), layer._masks.rows(n)
            dX = layer._dX.rows(n) if need_dX else None
            op = step.DropoutOp(layer, previous, out, dX, mask, threshold, 1.0 / (1.0 - p))
            leave(layer, _shape=(n, width), _mask=mask)
            attribute = None
        elif kind is BatchNorm:
            out = layer._out.rows(n)
            dX_buffer = layer._dX.rows(n)
            op = step.BatchNormOp(layer, previous, out, dX_buffer if need_dX else None,
                                  layer.gamma.data, layer.beta.data, layer.running_mean,
                                  layer.running_var, layer._mean, layer._inv_std,
                                  layer.gamma._grad, layer.beta._grad, dX_buffer,
                                  float(layer.momentum), float(layer.eps))
            leave(layer, _X=previous, _training=True, _stats=(layer._mean, layer._inv_std))
            attribute = "_X"
        else:  # a fused activation or dropout with p = 0 passes its input through
            if kind is Dropout:
                leave(layer, _shape=(n, width), _mask=None)
            else:
                leave(layer, _A=previous)
            features = width
            continue
        if not ops:
            first_attribute = attribute
        ops.append(op)
        previous = out
        features = width
    if not ops:
        return None, []
    if first_backward is None:
        first_backward = len(ops)
    return step.Plan(ops, model._dscores.rows(n), _LOSSES[loss], first_attribute,
                     first_backward), left

