"""Layers: small objects that own their parameters and buffers and call one kernel each.

The protocol (Sequential relies on nothing else):
    parameters()                      -> list of Parameter, weight before bias
    reset_parameters(dtype, rng)      (re)initialize parameters in the given dtype
    forward(X, training)              -> output (N, out_features); keeps what backward needs
    backward(dA, need_dX=True)        accumulates parameter gradients; returns dL/dX or None
    buffers()                         -> dict of non-learnable state arrays (BatchNorm's running
                                         statistics), saved by Sequential.state_dict()
    bind(index, seed)                 called by Sequential after reset_parameters with the layer's
                                         position and an integer seed, for layers that draw
                                         random numbers (Dropout)
    config()                          -> JSON-able dict of constructor arguments:
                                         type(layer)(**layer.config()) rebuilds an equivalent layer
                                         (an unnamed callable init is stored as None: the saved
                                         weights are what counts)
    get_extra_state() / set_extra_state(state)
                                      JSON-able non-array state that resuming a run needs
                                         (Dropout's seed, index and step); {} for most layers
    _step_held() / _step_op(step, n, features, previous, need_dX)
                                      optional: the layer's op in the compiled training step
                                         (see fastnn._step); without them a model that holds
                                         the layer trains layer by layer
Buffers are grown to the largest batch seen and reused through row views, so a training loop
allocates nothing per step once it has seen its batch size. That is for training-mode forwards
and backward only: an inference-mode forward (training=False) writes fresh arrays, so that
several threads can run inference on one layer at once (see Sequential).
"""

from ._base import (DTYPES, LAYERS, Buffer, FlatPlace, FlatStorage, Layer, Parameter, _init_config,
                    all_finite, as_dtype, first_trainable, flat_run, gradient_outputs,
                    gradients_written, input_checked, positive_config, register, renewed)
from ._base import bf16_compute
from .activations import (DEFAULT_ALPHA, ELU, Activation, Identity, LeakyReLU, PReLU, ReLU,
                          Sigmoid, Tanh, _activation_alpha, _kinks, activation_layers)
from .batchnorm import BatchNorm
from .dense import Dense, fused_activations
from .dropout import Dropout, stream_seed
from .units import Maxout

__all__ = ["Activation", "BatchNorm", "Buffer", "DEFAULT_ALPHA", "DTYPES", "Dense", "Dropout",
           "ELU", "FlatPlace", "FlatStorage", "Identity", "LAYERS", "Layer", "LeakyReLU", "Maxout",
           "PReLU", "Parameter", "ReLU", "Sigmoid", "Tanh", "activation_layers", "all_finite",
           "as_dtype", "first_trainable", "flat_run", "gradient_outputs", "gradients_written",
           "input_checked", "positive_config", "register", "renewed", "stream_seed",
           "bf16_compute", "fused_activations"]
