"""BatchNorm over the features of a batch."""

import numpy as np

from .. import _backend
from .._validation import check_float
from ._base import (Buffer, Layer, as_dtype, gradient_outputs, gradients_written, positive_config,
                    register, renewed)


@register
class BatchNorm(Layer):
    """Batch normalization of (N, D) activations, with torch.nn.BatchNorm1d's semantics.

    Training mode: out = (X - mean) / sqrt(var + eps) * gamma + beta with the batch mean and the
    biased batch variance, and the running statistics are updated as
        running_mean = (1 - momentum) * running_mean + momentum * mean
        running_var  = (1 - momentum) * running_var  + momentum * var * N / (N - 1)
    (the unbiased variance). Inference mode normalizes with running_mean and running_var.
    momentum weights the *new* batch statistic, as in PyTorch; the CS231n notes and Keras call
    the weight of the *old* value momentum (their 0.9 is our 0.1). gamma (ones) and beta (zeros)
    are the learnable parameters; running_mean (zeros) and running_var (ones) are buffers, saved
    by Sequential.state_dict(). A batch of one in training mode is an error (no variance to
    estimate); constant features are fine (eps keeps 1/sqrt(var + eps) finite).
    """

    @classmethod
    def declared_arrays(cls, config, invalid):
        d = positive_config(config, "num_features", invalid)
        return [("gamma", (d,)), ("beta", (d,))], [("running_mean", (d,)), ("running_var", (d,))]

    def __init__(self, num_features, eps=1e-5, momentum=0.1, dtype="float32"):
        if (isinstance(num_features, bool) or not isinstance(num_features, (int, np.integer))
                or num_features < 1):
            raise ValueError(f"BatchNorm: num_features must be a positive integer, got "
                             f"{num_features!r}")
        momentum = check_float("BatchNorm: momentum", momentum, 0.0, 1.0)
        eps = check_float("BatchNorm: eps", eps, 0.0, low_open=True)
        self.momentum, self.eps = _backend.batchnorm_options("BatchNorm", 2, False, momentum, eps)
        self.in_features = self.out_features = int(num_features)
        self.reset_parameters(dtype)

    def reset_parameters(self, dtype="float32", rng=None):
        dtype = as_dtype(dtype)
        d = self.in_features
        self.gamma = renewed(getattr(self, "gamma", None), np.ones(d, dtype=dtype), "gamma")
        self.beta = renewed(getattr(self, "beta", None), np.zeros(d, dtype=dtype), "beta")
        self.running_mean = np.zeros(d, dtype=dtype)
        self.running_var = np.ones(d, dtype=dtype)
        self._mean = np.empty(d, dtype=dtype)  # statistics of a training forward, for backward
        self._inv_std = np.empty(d, dtype=dtype)
        self._stats = (self._mean, self._inv_std)  # those of the last forward
        self._out = Buffer(d, dtype)
        self._dX = Buffer(d, dtype)
        self._X = self._training = None

    @property
    def dtype(self):
        return self.gamma.dtype

    def config(self):
        return dict(num_features=self.in_features, eps=self.eps, momentum=self.momentum,
                    dtype=self.dtype.name)

    def parameters(self):
        return [self.gamma, self.beta]

    def buffers(self):
        return {"running_mean": self.running_mean, "running_var": self.running_var}

    def forward(self, X, training=False):
        X = self._check_input(X, self.dtype)
        training = bool(training)
        if training and X.shape[0] == 1:
            raise ValueError(f"{self._label()}: training mode needs more than one sample per "
                             "batch to compute batch statistics, got a batch of 1 (use "
                             "training=False / model.eval() for single samples)")
        if training:
            out, stats = self._out.rows(X.shape[0]), (self._mean, self._inv_std)
        else:
            out, stats = None, (np.empty_like(self._mean), np.empty_like(self._inv_std))
        out = _backend.kernels.batchnorm_forward(
            X, self.gamma.data, self.beta.data, self.running_mean, self.running_var,
            training=training, momentum=self.momentum, eps=self.eps, out=out, mean=stats[0],
            inv_std=stats[1])
        self._X, self._training, self._stats = X, training, stats
        return out

    def backward(self, dA, need_dX=True):
        dA = self._check_grad(dA, None if self._X is None else self._X.shape, self.dtype)
        params = (self.gamma, self.beta)
        accumulate, (dgamma, dbeta) = gradient_outputs(params)
        dX, _, _ = _backend.kernels.batchnorm_backward(
            dA, self._X, self.gamma.data, *self._stats, training=self._training,
            dX=self._dX.rows(dA.shape[0]), dgamma=dgamma, dbeta=dbeta, accumulate=accumulate)
        gradients_written(params)
        return dX if need_dX else None

    def _step_held(self):
        """See Dense._step_held."""
        gamma, beta = self.gamma, self.beta
        return (gamma._data, gamma._grad, beta._data, beta._grad, self.running_mean,
                self.running_var, self._mean, self._inv_std, self._out._array, self._dX._array,
                self.momentum, self.eps, gamma._requires_grad, beta._requires_grad)

    def _step_op(self, step, n, features, previous, need_dX):
        """See Dense._step_op. NotImplemented for a batch of one, which forward refuses."""
        if n < 2:
            return NotImplemented
        out, dX = self._out.rows(n), self._dX.rows(n)  # (backward writes dX even when unused)
        op = step.BatchNormOp(self, previous, out, dX if need_dX else None, self.gamma.data,
                              self.beta.data, self.running_mean, self.running_var, self._mean,
                              self._inv_std, self.gamma._grad, self.beta._grad, dX,
                              float(self.momentum), float(self.eps))
        return op, out, self._leave(_X=previous, _training=True,
                                    _stats=(self._mean, self._inv_std))

    def __repr__(self):
        return f"BatchNorm({self.in_features})"
