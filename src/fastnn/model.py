"""Sequential: a model that is a list of layers."""
import math
import threading

import numpy as np

from . import losses
from ._mixed import attach_copies, check_compute_dtype, detach_copies, refresh_copies
from ._model_state import flatten_parameters, load_state, state_arrays
from ._step import CompiledStep
from ._summary import summary as _summary
from ._validation import as_labels, check_int
from .init import default_init
from .layers import (Buffer, Layer, all_finite, as_dtype, bf16_compute, first_trainable,
                     fused_activations, gradients_written, input_checked)


def softmax(scores):
    """Row-wise softmax, stable for any finite scores."""
    shifted = scores - scores.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


class Sequential:
    """Layers applied in order. Every layer is (re)initialized from one generator seeded with
    `seed`, in `dtype` ("float32" or "float64"), so the same seed gives the same model. Layers
    that draw random numbers in training (Dropout) key them on the seed and their index: an
    integer seed is used as it is, any other (None: fresh entropy) gives one integer drawn from
    that generator after the layers are initialized. compute_dtype="bfloat16" runs the
    GEMMs on bfloat16 operands (see the compute_dtype property).

        model = Sequential(Dense(64, 128, activation="relu"), Dense(128, 10), seed=0)
        scores = model.forward(X, training=True)    # or model(X)
        loss, dscores = fastnn.losses.softmax_cross_entropy(scores, y)
        model.zero_grad(); model.backward(dscores)

    Threads: inference (forward with training=False or in eval mode, predict, predict_proba)
    may run in several threads at once on one model: each call computes into arrays of its own.
    Training (forward in training mode, backward, forward_backward, train_step) is one thread's
    at a time: a second thread's call while one runs raises RuntimeError. Inference while
    another thread trains the same model is refused the same way when it starts during a
    training call (and is never supported: it would read parameters halfway through an update).
    """

    def __init__(self, *layers, dtype="float32", seed=None, compute_dtype="float32"):
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        features = None
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential: layer {i} is {type(layer).__name__}, not a fastnn "
                                "layer")
            if features is not None and layer.in_features not in (None, features):
                raise ValueError(f"Sequential: layer {i} ({layer!r}) expects {layer.in_features} "
                                 f"input features, but the layer before it outputs {features}")
            features = layer.out_features or features
        self.dtype = as_dtype(dtype)
        self._compute_dtype = check_compute_dtype("Sequential", compute_dtype, self.dtype)
        if seed is not None and not isinstance(seed, (np.random.Generator, np.random.BitGenerator,
                                                      np.random.SeedSequence)):
            seed = check_int("Sequential: seed", seed, low=0)
        self.seed = seed
        self.layers = list(layers)
        self.training = True
        rng = np.random.default_rng(seed)
        fused = fused_activations(self.layers)
        for i, layer in enumerate(self.layers):
            layer.name = f"layer {i} ({layer!r})"
            if i in fused and layer.init_is_default:
                # Dense(a, b) + ReLU() is initialized like Dense(a, b, activation="relu")
                layer.reset_parameters(self.dtype, rng, init=default_init(fused[i][0]))
            else:
                layer.reset_parameters(self.dtype, rng)
        integer_seed = isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)
        stream_seed = int(seed) if integer_seed else int(rng.integers(2**63))
        for i, layer in enumerate(self.layers):
            layer.bind(i, stream_seed)
        # one flat data and one flat gradient array, which the optimizer updates in one call
        self._flat = flatten_parameters(self.parameters(), self.dtype)
        self._output_shape = None
        # (a model of parameter-free layers has no fixed width: its losses allocate dscores)
        self._dscores = Buffer(self.out_features, self.dtype) if self.out_features else None
        self._compiled = CompiledStep()
        self._training_call = threading.Lock()  # held by the training operation under way
        self._copies = threading.Lock()  # held while the bf16 parameter copies are written
        self.compute_dtype = self._compute_dtype

    @property
    def compute_dtype(self):
        """"float32", or "bfloat16": GEMM operands rounded to bfloat16, float32 accumulation;
        parameters, gradients, optimizer state, losses and BatchNorm stay float32."""
        return self._compute_dtype

    @compute_dtype.setter
    def compute_dtype(self, value):
        self._compute_dtype = check_compute_dtype("Sequential", value, self.dtype)
        if value == "bfloat16":
            attach_copies(self.parameters(), None if self._flat is None else self._flat[0])
        else:
            detach_copies(self.parameters())

    @property
    def in_features(self):
        # None for a model of parameter-free layers: it takes any width
        return next((l.in_features for l in self.layers if l.in_features is not None), None)

    @property
    def out_features(self):
        return next((l.out_features for l in reversed(self.layers)
                     if l.out_features is not None), None)

    def parameters(self):
        """All learnable parameters, in layer order, weight before bias."""
        return [p for layer in self.layers for p in layer.parameters()]

    def zero_grad(self):
        for p in self.parameters():
            p.zero_grad()

    def train(self, mode=True):
        self.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def forward(self, X, training=None):
        """Scores (N, out_features) for a batch X (N, in_features); a fresh array.

        training=None uses the model's mode (train() / eval()). The input is checked for NaN/inf
        here, once, with one cheap reduction.
        """
        training = self.training if training is None else bool(training)
        X = self.layers[0]._check_input(X, self.dtype, finite=False)
        if training:
            if not self._training_call.acquire(False):
                self._refuse("forward")
            try:
                return self._forward(X, True).copy()
            finally:
                self._training_call.release()
        if self._training_call.locked():
            raise RuntimeError("Sequential: inference while another thread trains this model, "
                               "or from inside one of its training calls (it would read "
                               "parameters halfway through an update, or overwrite what "
                               "backward needs); predict with a copy (fastnn.load, or "
                               "load_state_dict)")
        scores = self._forward(X, False)
        # Inference forwards compute into fresh arrays; only a model that passes its input
        # through unchanged returns an array that is not its own.
        return scores.copy() if scores is X else scores

    @staticmethod
    def _refuse(operation):
        """A training operation found the model taken by another thread's."""
        raise RuntimeError(f"Sequential.{operation}: another thread is training this model, "
                           "or this call is inside one of its training calls (training calls "
                           "on one model must come one at a time, from one thread at a time)")

    def _forward(self, X, training, refreshed=False):
        """The scores in the last layer's output buffer, which the next forward overwrites. X is
        as the first layer's _check_input returned it; NaN/inf are found with one cheap
        reduction. refreshed: the bf16 copies were just brought up to date."""
        if not all_finite(X):
            raise ValueError(f"{self.layers[0]._label()}: input contains NaN or inf")
        bf16 = self._compute_dtype == "bfloat16"
        if bf16 and not refreshed:
            refresh_copies(self.parameters(), self._copies)
        checked, compute = input_checked.set(True), bf16_compute.set(bf16)
        fused = fused_activations(self.layers)
        try:
            for i, layer in enumerate(self.layers):
                if i in fused:
                    X = layer.forward(X, training=training, epilogue=fused[i])
                elif i - 1 not in fused:  # (an activation fused into the Dense before it)
                    X = layer.forward(X, training=training)
        finally:
            input_checked.reset(checked)
            bf16_compute.reset(compute)
        if not training:
            self._compiled.stale = True
        self._output_shape = X.shape
        return X

    __call__ = forward

    def backward(self, dscores, input_grad=False):
        """Backpropagate dL/dscores of the last forward; accumulates into each parameter's grad.

        With input_grad=True, also returns dL/dX, the gradient with respect to the last
        forward's input X (N, in_features), as a fresh array in the model's dtype: the notes'
        saliency maps (the gradient of a class score with respect to the pixels). It is opt-in,
        like PyTorch's X.requires_grad, because it costs the first layer one more GEMM that
        training does not need; by default backward returns None. Without it, backward stops at
        the first layer with a trainable parameter (the layers below it lead only to frozen
        parameters, see Parameter.requires_grad).
        """
        if not isinstance(input_grad, (bool, np.bool_)):
            raise TypeError(f"Sequential.backward: input_grad must be True or False, got "
                            f"{input_grad!r}")
        if self._output_shape is None:
            raise RuntimeError("Sequential.backward called before forward")
        if not self._training_call.acquire(False):
            self._refuse("backward")
        try:
            return self._backward(dscores, input_grad)
        finally:
            self._training_call.release()

    def _backward(self, dscores, input_grad=False):
        # Below the first layer with a trainable parameter nothing needs a gradient.
        stop = 0 if input_grad else first_trainable(self.layers)
        grad, fused = dscores, fused_activations(self.layers)
        for i in range(len(self.layers) - 1, stop - 1, -1):
            if i - 1 not in fused:
                grad = self.layers[i].backward(grad, need_dX=i > stop or bool(input_grad))
        return np.array(grad, dtype=self.dtype) if input_grad else None

    def forward_backward(self, X, y, loss):
        """Forward in training mode, the loss against y, and backward: the gradients of one
        training step, without the update. Returns (loss value as a float, scores).

        The same as

            scores = model.forward(X, training=True); loss_value, dscores = loss(scores, y)
            model.zero_grad(); model.backward(dscores)

        (each parameter's .grad then holds this batch's gradient) without that sequence's
        copies: the scores and their gradient stay in buffers the model reuses, so `scores` is
        overwritten by the next forward. `loss` is a name or function from fastnn.losses, or any
        callable (scores, y) -> (loss, dscores).

        On the compiled backend, a model of Dense, activation, Dropout and BatchNorm layers with
        softmax cross-entropy or the multiclass hinge loss runs forward, loss and backward in one
        compiled call (fastnn._step): the same kernels on the same arrays, without a Python call
        per layer. Other models and losses, and the NumPy backend, go layer by layer.
        """
        return self._fit_forward_backward(X, y, loss, 0.0, 0.0, False)[:2]

    def _forward_backward(self, X, y, loss, l1=0.0, l2=0.0, count=False, finite=False):
        """(loss value, scores, fused). With l1/l2 (checked strengths) or count, a compiled
        plan that can also does the elastic-net penalty (value and gradient, as
        regularization.ElasticNet(l1, l2)(model) would) and counts the rows classified right
        (as metrics.correct would): fused is then (penalty, correct or None). It is None when
        the step went layer by layer, or the plan cannot do what was asked: the caller does it.
        finite=True: X is known to hold no NaN or inf when it is of the model's dtype (rows of
        data the caller checked), so the plan does not look again."""
        loss = losses.get(loss)
        X_given = X
        X = self.layers[0]._check_input(X, self.dtype, finite=False)
        n = X.shape[0]
        compiled = self._compiled
        bf16 = self._compute_dtype == "bfloat16"
        if bf16:  # (first: the plan holds the copies)
            refresh_copies(self.parameters(), self._copies)
        plan = compiled.plan_for(self, n, loss) if self._dscores is not None else None
        if plan is not None:
            if not (finite and X is X_given) and not plan.all_finite(X):
                raise ValueError(f"{self.layers[0]._label()}: input contains NaN or inf")
            if not plan.labels_ok(y):
                y = as_labels(loss.__name__, y, n, self.out_features)
            fuse = compiled.penalizes or not (l1 or l2)
            if fuse:
                loss_value = plan.run(X, y, l1, l2, count)
            else:
                loss_value = plan.run(X, y)
            gradients_written(compiled.parameters)
            scores = plan.scores
            self._output_shape = scores.shape
            fused = (plan.penalty, plan.correct if count else None) if fuse else None
            return loss_value, scores, fused
        scores = self._forward(X, training=True, refreshed=bf16)
        if loss in losses.TAKE_DSCORES and self._dscores is not None:
            loss_value, dscores = loss(scores, y, dscores=self._dscores.rows(n))
        else:
            loss_value, dscores = loss(scores, y)
        self.zero_grad()
        self._backward(dscores)
        return float(loss_value), scores, None

    def _fit_forward_backward(self, X, y, loss, l1, l2, count, finite=False):
        """_forward_backward under the training-call guard (forward_backward, and the Trainer's
        step with its penalty strengths and count)."""
        if not self._training_call.acquire(False):
            self._refuse("forward_backward")
        try:
            return self._forward_backward(X, y, loss, l1, l2, count, finite)
        finally:
            self._training_call.release()

    def _nonfinite(self, which):
        """The name of a parameter whose data (which=0) or gradient (which=1) holds NaN or inf,
        or None: one pass over the flat array (the compiled plan's vectorized check, or a dot
        product, finite only if every element is), and an exact look only when that fails. A
        gradient marked zero is not looked at."""
        if self._flat is not None:
            flat, plan = self._flat[which], self._compiled.plan
            if plan.all_finite(flat) if plan is not None else math.isfinite(np.dot(flat, flat)):
                return None
        for i, layer in enumerate(self.layers):
            for p in layer.parameters():
                if which and p._grad_is_zero:
                    continue
                if not np.isfinite(p._grad if which else p._data).all():
                    return f"{i}.{p.name}"
        return None

    def train_step(self, X, y, loss, optimizer):
        """One training step on the batch (X, y); returns its data loss (a float).

        forward_backward(X, y, loss) and then optimizer.step(): the same as

            loss_value, dscores = loss(model.forward(X, training=True), y)
            model.zero_grad(); model.backward(dscores); optimizer.step()

        Once the first steps have sized the model's buffers (and the optimizer its state) a
        step allocates no arrays. A non-finite loss or gradient raises FloatingPointError before
        the update, so the parameters keep the values of the last good step. An update that
        leaves a parameter non-finite all the same (an optimizer dividing by zero, say, with
        eps=0) raises FloatingPointError after it: the model then holds that update, and the
        caller's last copy (state_dict) is what to go back to. Each check is one reduction over
        the model's flat gradient or parameter array.
        """
        if not callable(getattr(optimizer, "step", None)):
            raise TypeError("train_step: optimizer must be a fastnn optimizer over this model's "
                            f"parameters (e.g. fastnn.optim.SGD(model.parameters())), got "
                            f"{optimizer!r}")
        if not self._training_call.acquire(False):
            self._refuse("train_step")
        try:
            loss_value = self._forward_backward(X, y, loss)[0]
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"train_step: the loss is {loss_value}; the parameters "
                                         "were not updated (learning rate too high, or bad "
                                         "input?)")
            bad = self._nonfinite(1)
            if bad is not None:
                raise FloatingPointError(f"train_step: the gradient of {bad} holds NaN or inf "
                                         f"(the loss is {loss_value}); the parameters were not "
                                         "updated")
            optimizer.step()
            bad = self._nonfinite(0)
            if bad is not None:
                raise FloatingPointError(f"train_step: the update made {bad} non-finite (the "
                                         f"loss before it was {loss_value}); the model holds "
                                         "that update: restore a state_dict saved before")
        finally:
            self._training_call.release()
        return loss_value

    def predict_proba(self, X, batch_size=4096):
        """Class probabilities (softmax of the scores) in inference mode."""
        return softmax(self._predict_scores(X, batch_size))

    def predict(self, X, batch_size=4096):
        """Predicted class indices in inference mode."""
        return self._predict_scores(X, batch_size).argmax(axis=1)

    def _predict_scores(self, X, batch_size):
        batch_size = check_int("Sequential.predict: batch_size", batch_size, low=1)
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[0] <= batch_size:
            return self.forward(X, training=False)
        return np.concatenate([self.forward(X[start:start + batch_size], training=False)
                               for start in range(0, X.shape[0], batch_size)])

    def _state_arrays(self):
        """Every parameter array and buffer (running statistics), keyed "<layer index>.<name>"."""
        return state_arrays(self.layers)

    def state_dict(self):
        """Copies of every parameter array and buffer, keyed "<layer index>.<name>"."""
        return {key: array.copy() for key, array in self._state_arrays().items()}

    def load_state_dict(self, state, strict=True):
        """Copy arrays from `state_dict()` output into the parameters and buffers.

        strict=True: the keys and shapes must match exactly (else ValueError, nothing copied).
        strict=False (transfer learning: a saved model's feature layers into a new model whose
        top differs): copies every array whose key and shape match and skips the rest.
        Returns LoadResult(missing_keys, unexpected_keys, mismatched_keys): the model's keys not
        in `state`, the keys of `state` the model does not have, and the keys whose shapes differ
        (PyTorch raises on those even with strict=False; here they are skipped and reported).
        Keys are "<layer index>.<name>", so layers are matched by position.
        """
        return load_state(self._state_arrays(), state, strict)

    def save(self, path):
        """Write the model to `path` as a fastnn .npz file (fastnn.save); read it back with
        fastnn.load(path)."""
        from ._save import write  # (below the model: fastnn.io, above it, rebuilds models)
        write(self, path)

    def summary(self, print_fn=print):
        """Print a table of the layers and the totals the CS231n notes count; return the totals.

        Per layer: output size, weights, biases and learnable parameters. Totals: neurons (units
        of the layers with weights; inputs are not neurons), weights, biases, learnable parameters
        (including BatchNorm's and PReLU's) and the N of "N-layer network" (layers with weights;
        the input layer is not counted).
        """
        return _summary(self, print_fn)

    def __repr__(self):
        inner = "".join(f"\n  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)"
