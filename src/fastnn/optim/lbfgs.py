"""L-BFGS, as torch.optim.LBFGS: the notes' quasi-Newton method, for full-batch training.

    opt = fnn.optim.LBFGS(model.parameters(), lr=1, max_iter=100, line_search_fn="strong_wolfe")

    def closure():                      # zero_grad, forward, loss, backward; returns the loss
        loss, _ = model.forward_backward(X, y, "softmax_cross_entropy")
        return loss + penalty(model)    # (optional) a penalty adds its gradient to .grad
    opt.step(closure)                   # up to max_iter iterations, evaluating closure as needed

Same arguments, defaults and algorithm as PyTorch's (two-loop recursion over the last
history_size curvature pairs, an optional strong-Wolfe line search with cubic interpolation), so
the iterates agree with torch.optim.LBFGS up to rounding. The arithmetic is a handful of dot
products and axpys over one flat vector per call: NumPy on the model's flat arrays (no kernel of
its own). Frozen parameters (requires_grad False) are left out.
"""
import math
import numbers

import numpy as np

from .optimizers import Optimizer, _FlatGroup


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """The minimizer of the cubic through (x1, f1, g1) and (x2, f2, g2), clipped to `bounds`
    (default: the interval between x1 and x2); the middle of the bounds if it has none."""
    low, high = bounds if bounds is not None else (min(x1, x2), max(x1, x2))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 * d1 - g1 * g2
    if d2_square >= 0:
        d2 = math.sqrt(d2_square)
        if x1 <= x2:
            position = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            position = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(position, low), high)
    return (low + high) / 2.0


def _strong_wolfe(evaluate, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9,
                  max_ls=25):
    """A step t along d satisfying the strong Wolfe conditions (bracketing, then zoom), as
    PyTorch's _strong_wolfe. evaluate(t) -> (loss, flat gradient) at x + t * d.
    Returns (loss, gradient, t, evaluations)."""
    d_norm = float(np.abs(d).max())
    f_new, g_new = evaluate(t)
    evaluations = 1
    gtd_new = float(np.dot(g_new, d))
    t_prev, f_prev, g_prev, gtd_prev = 0.0, f, g, gtd
    done = False
    ls_iter = 0
    while ls_iter < max_ls:
        if f_new > f + c1 * t * gtd or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new], [gtd_prev, gtd_new]
            break
        step = t
        t = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new,
                               bounds=(t + 0.01 * (t - t_prev), t * 10))
        t_prev, f_prev, g_prev, gtd_prev = step, f_new, g_new, gtd_new
        f_new, g_new = evaluate(t)
        evaluations += 1
        gtd_new = float(np.dot(g_new, d))
        ls_iter += 1
    if ls_iter == max_ls:
        bracket, bracket_f, bracket_g = [0.0, t], [f, f_new], [g, g_new]

    # Zoom: shrink the bracket until a point satisfies the conditions.
    insufficient_progress = False
    low, high = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0], bracket[1],
                               bracket_f[1], bracket_gtd[1])
        # Too close to an end of the bracket: move away from it (once progress stalls).
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insufficient_progress or t >= max(bracket) or t <= min(bracket):
                t = max(bracket) - eps if abs(t - max(bracket)) < abs(t - min(bracket)) \
                    else min(bracket) + eps
                insufficient_progress = False
            else:
                insufficient_progress = True
        else:
            insufficient_progress = False
        f_new, g_new = evaluate(t)
        evaluations += 1
        gtd_new = float(np.dot(g_new, d))
        ls_iter += 1
        if f_new > f + c1 * t * gtd or f_new >= bracket_f[low]:
            bracket[high], bracket_f[high] = t, f_new
            bracket_g[high], bracket_gtd[high] = g_new, gtd_new
            low, high = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high] - bracket[low]) >= 0:
                bracket[high], bracket_f[high] = bracket[low], bracket_f[low]
                bracket_g[high], bracket_gtd[high] = bracket_g[low], bracket_gtd[low]
            bracket[low], bracket_f[low] = t, f_new
            bracket_g[low], bracket_gtd[low] = g_new, gtd_new
    return bracket_f[low], bracket_g[low], bracket[low], evaluations


def _positive_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


class LBFGS(Optimizer):
    """Limited-memory BFGS with torch.optim.LBFGS's arguments and defaults.

    lr: the step length (1 is the natural one for a quasi-Newton step); max_iter: iterations per
    step(); max_eval: closure evaluations per step() (default max_iter * 5 // 4);
    tolerance_grad: stop when the largest gradient entry is at most this; tolerance_change: stop
    when the step or the change of the loss is below this; history_size: curvature pairs kept;
    line_search_fn: None (fixed step lr) or "strong_wolfe".

    step(closure) needs the closure: it must clear the gradients, compute the loss, backpropagate
    and return the loss (a number). The whole data set each time: L-BFGS is a full-batch method
    (as scikit-learn's MLP solver="lbfgs"); minibatch noise breaks its curvature estimates. One
    parameter group only, as in PyTorch; the Trainer (minibatches) does not drive it, and the
    fastnn checkpoint format does not store its state.
    """

    def __init__(self, params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7,
                 tolerance_change=1e-9, history_size=100, line_search_fn=None):
        if max_eval is None and _positive_int(max_iter):
            max_eval = max_iter * 5 // 4
        super().__init__(params, dict(lr=lr, max_iter=max_iter, max_eval=max_eval,
                                      tolerance_grad=tolerance_grad,
                                      tolerance_change=tolerance_change,
                                      history_size=history_size, line_search_fn=line_search_fn))
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS: takes one parameter group (as torch.optim.LBFGS), got "
                             f"{len(self.param_groups)}")
        self._layout = None

    def _check_group(self, group):
        for key in ("lr", "tolerance_grad", "tolerance_change"):
            value = group[key]
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"LBFGS: {key} must be a number, got {value!r}")
            self._check_range("LBFGS", key, value)
        if not group["lr"] > 0:
            raise ValueError(f"LBFGS: invalid lr {group['lr']!r}; expected a number > 0")
        for key in ("max_iter", "max_eval", "history_size"):
            if not _positive_int(group[key]):
                raise ValueError(f"LBFGS: {key} must be a positive integer, got {group[key]!r}")
        if group["line_search_fn"] not in (None, "strong_wolfe"):
            raise ValueError(f"LBFGS: line_search_fn must be None or 'strong_wolfe', got "
                             f"{group['line_search_fn']!r}")

    # -- the parameters as one flat vector

    def _params(self):
        return [p for p in self.param_groups[0]["params"] if p._requires_grad]

    def _flat_arrays(self, params):
        """(flat data view or None, flat grad view or None) of the trainable parameters."""
        if self._layout is None or not self._layout.still_valid(params):
            self._layout = _FlatGroup.build(params, {})  # (LBFGS keeps no per-parameter state)
        flat = self._layout.flat
        return (flat._data, flat._grad) if flat is not None else (None, None)

    def _gather_grad(self, params):
        for p in params:
            if p._grad_is_zero:  # cleared and not since computed: zeros
                p.grad
        _, grad = self._flat_arrays(params)
        if grad is not None:
            return grad.copy()
        return np.concatenate([p._grad.ravel() for p in params])

    def _gather_data(self, params):
        data, _ = self._flat_arrays(params)
        if data is not None:
            return data.copy()
        return np.concatenate([p._data.ravel() for p in params])

    def _set_data(self, params, x):
        _stale(params)
        data, _ = self._flat_arrays(params)
        if data is not None:
            data[...] = x
            return
        offset = 0
        for p in params:
            p._data[...] = x[offset:offset + p.size].reshape(p.shape)
            offset += p.size

    def _add(self, params, t, d):
        """x += t * d, in the parameters' dtype."""
        _stale(params)
        data, _ = self._flat_arrays(params)
        step = d * d.dtype.type(t)
        if data is not None:
            data += step
            return
        offset = 0
        for p in params:
            p._data += step[offset:offset + p.size].reshape(p.shape)
            offset += p.size

    @staticmethod
    def _loss(value):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise TypeError(f"LBFGS: the closure must return the loss as a number, got "
                            f"{type(value).__name__}") from None

    def step(self, closure=None):
        """Up to max_iter L-BFGS iterations; returns the loss the closure gave first."""
        if closure is None or not callable(closure):
            raise TypeError("LBFGS.step needs a closure that clears the gradients, computes the "
                            "loss, backpropagates and returns the loss: opt.step(closure)")
        group = self.param_groups[0]
        self._check_group(group)
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        history_size = group["history_size"]
        params = self._params()
        first_loss = closure()
        loss = self._loss(first_loss)
        if not params:
            return first_loss
        state = self.state.setdefault(params[0], {})
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)
        evaluations = 1
        state["func_evals"] += 1
        flat_grad = self._gather_grad(params)
        if np.abs(flat_grad).max() <= tolerance_grad:
            return first_loss

        d, t = state.get("d"), state.get("t")
        old_dirs, old_steps, ro = state.get("old_dirs"), state.get("old_stps"), state.get("ro")
        H_diag = state.get("H_diag")
        prev_flat_grad, prev_loss = state.get("prev_flat_grad"), state.get("prev_loss")
        dtype = flat_grad.dtype.type
        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d = -flat_grad
                old_dirs, old_steps, ro, H_diag = [], [], [], 1.0
            else:
                # Update the curvature pairs, then the two-loop recursion: d = -H grad.
                y = flat_grad - prev_flat_grad
                s = d * dtype(t)
                ys = float(np.dot(y, s))
                if ys > 1e-10:
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0), old_steps.pop(0), ro.pop(0)
                    old_dirs.append(y)
                    old_steps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = ys / float(np.dot(y, y))
                alpha = [0.0] * len(old_dirs)
                q = -flat_grad
                for i in range(len(old_dirs) - 1, -1, -1):
                    alpha[i] = float(np.dot(old_steps[i], q)) * ro[i]
                    q -= dtype(alpha[i]) * old_dirs[i]
                d = r = q * dtype(H_diag)
                for i in range(len(old_dirs)):
                    beta = float(np.dot(old_dirs[i], r)) * ro[i]
                    r += dtype(alpha[i] - beta) * old_steps[i]
            prev_flat_grad = flat_grad.copy()
            prev_loss = loss
            t = min(1.0, 1.0 / float(np.abs(flat_grad).sum())) * lr if state["n_iter"] == 1 \
                else lr
            gtd = float(np.dot(flat_grad, d))
            if gtd > -tolerance_change:  # not a descent direction
                break
            ls_evaluations = 0
            if group["line_search_fn"] == "strong_wolfe":
                x_init = self._gather_data(params)

                def evaluate(step):
                    self._add(params, step, d)
                    value = self._loss(closure())
                    grad = self._gather_grad(params)
                    self._set_data(params, x_init)
                    return value, grad

                loss, flat_grad, t, ls_evaluations = _strong_wolfe(evaluate, t, d, loss,
                                                                   flat_grad, gtd)
                self._add(params, t, d)
                optimal = np.abs(flat_grad).max() <= tolerance_grad
            else:
                self._add(params, t, d)
                optimal = False
                if n_iter != max_iter:
                    loss = self._loss(closure())
                    flat_grad = self._gather_grad(params)
                    optimal = np.abs(flat_grad).max() <= tolerance_grad
                    ls_evaluations = 1
            evaluations += ls_evaluations
            state["func_evals"] += ls_evaluations
            if n_iter == max_iter or evaluations >= max_eval or optimal:
                break
            if np.abs(d * dtype(t)).max() <= tolerance_change:
                break
            if abs(loss - prev_loss) < tolerance_change:
                break
        state.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_steps, ro=ro, H_diag=H_diag,
                     prev_flat_grad=prev_flat_grad, prev_loss=prev_loss)
        return first_loss


def _stale(params):
    """The parameters' bf16 copies no longer hold their data (see Parameter)."""
    for p in params:
        p._bf16_fresh = False
