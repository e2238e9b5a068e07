"""Maxout: the maximum over `pieces` affine maps."""

import numpy as np

from .. import _backend
from ..init import check_init, initialize
from ._base import (Buffer, Layer, as_dtype, gradient_outputs, gradients_written, _init_config,
                    positive_config, register, renewed)


@register
class Maxout(Layer):
    """Maxout units: out_j = max over k pieces of (X @ W_k + b_k)_j (Goodfellow et al.).

    W has shape (in_features, out_features * pieces): the pieces of unit j are the columns
    j * pieces ... j * pieces + pieces - 1. Backward routes each unit's gradient to its winning
    piece. init as for Dense (default "xavier"; fan_in = in_features).
    """

    @classmethod
    def declared_arrays(cls, config, invalid):
        n, m = positive_config(config, "in_features", invalid), positive_config(
            config, "out_features", invalid)
        pieces = config.get("pieces", 2)
        if isinstance(pieces, bool) or not isinstance(pieces, int) or not 2 <= pieces <= 255:
            raise invalid("pieces", pieces, "an integer in [2, 255]")
        return [("W", (n, m * pieces)), ("b", (m * pieces,))], []

    def __init__(self, in_features, out_features, pieces=2, init="xavier", dtype="float32",
                 seed=None):
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Maxout: {name} must be a positive integer, got {value!r}")
        if isinstance(pieces, bool) or not isinstance(pieces, (int, np.integer)) or not (
                2 <= pieces <= 255):
            raise ValueError(f"Maxout: pieces must be an integer in [2, 255], got {pieces!r}")
        self.in_features, self.out_features, self.pieces = int(in_features), int(out_features), \
            int(pieces)
        self.init = "xavier" if init is None else init
        check_init(self.init)
        self.reset_parameters(dtype, np.random.default_rng(seed))

    def reset_parameters(self, dtype="float32", rng=None):
        dtype = as_dtype(dtype)
        rng = np.random.default_rng() if rng is None else rng
        width = self.out_features * self.pieces
        self.W = renewed(getattr(self, "W", None), initialize(
            self.init, (self.in_features, width), rng, dtype, self._label()), "W", True)
        self.b = renewed(getattr(self, "b", None), np.zeros(width, dtype=dtype), "b")
        self._Z, self._dZ = Buffer(width, dtype), Buffer(width, dtype)
        self._out, self._dX = Buffer(self.out_features, dtype), Buffer(self.in_features, dtype)
        self._argmax = Buffer(self.out_features, np.uint8)
        self._X = self._winners = None

    @property
    def dtype(self):
        return self.W.dtype

    def config(self):
        return dict(in_features=self.in_features, out_features=self.out_features,
                    pieces=self.pieces, init=_init_config(self.init), dtype=self.dtype.name)

    def parameters(self):
        return [self.W, self.b]

    def forward(self, X, training=False):
        X = self._check_input(X, self.dtype)
        n = X.shape[0]
        self._X = X
        if training:
            buffers = dict(Z=self._Z.rows(n), out=self._out.rows(n), argmax=self._argmax.rows(n))
        else:
            buffers = {}
        out, self._winners = _backend.kernels.maxout_forward(
            X, self.W.data, self.b.data, pieces=self.pieces, **buffers)
        return out

    def backward(self, dA, need_dX=True):
        expected = None if self._X is None else (self._X.shape[0], self.out_features)
        dA = self._check_grad(dA, expected, self.dtype)
        n = dA.shape[0]
        params = (self.W, self.b)
        accumulate, (dW, db) = gradient_outputs(params)
        dX, _, _ = _backend.kernels.maxout_backward(
            dA, self._X, self.W.data, self._winners, pieces=self.pieces, dZ=self._dZ.rows(n),
            dW=dW, db=db, dX=self._dX.rows(n) if need_dX else None, need_dX=need_dX,
            accumulate=accumulate)
        gradients_written(params)
        return dX

    def kink_pattern(self):
        return None if self._winners is None else self._winners.copy()

    def __repr__(self):
        return f"Maxout({self.in_features} -> {self.out_features}, pieces={self.pieces})"
