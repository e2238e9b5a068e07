"""Coarse to fine: the region the best trials span, and the ranking that picks them."""
import math
import numbers

from ._distributions import Choice, IntUniform, LogUniform, Uniform, is_log_scaled, unique


def refine_space(space, values_by_name):
    """The region the given trials span, per hyperparameter (log-scaled where the space is).

    `values_by_name[name]` lists the values the best trials had. Our distributions refine
    themselves; another distribution (scipy.stats) becomes log_uniform/uniform/int_uniform over
    the values' range when they are numbers (log when it was loguniform), a choice otherwise.
    """
    refined = {}
    for name, dist in space.items():
        values = values_by_name[name]
        if hasattr(dist, "refine"):
            refined[name] = dist.refine(values)
        elif all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
            low, high = min(values), max(values)
            if all(isinstance(v, numbers.Integral) for v in values):
                refined[name] = IntUniform(int(low), int(high), log=is_log_scaled(dist) and low > 0)
            elif is_log_scaled(dist) and low > 0:
                refined[name] = LogUniform(low, high)
            else:
                refined[name] = Uniform(low, high)
        else:
            refined[name] = Choice(unique(values))
    return refined


def rank_trials(trials):
    """Set every trial's "rank": by score, best first; failed (or NaN) trials last."""
    order = sorted(trials, key=lambda t: (t["error"] is not None or math.isnan(t["score"]),
                                          -t["score"] if t["error"] is None else 0, t["trial"]))
    for rank, t in enumerate(order, 1):
        t["rank"] = rank
