"""SearchResult: the trial table, its ranking as text or a DataFrame, and its plot."""
import numbers

from ._distributions import Choice, is_log_scaled, same, unique

# Columns every trial row has; a hyperparameter may not take one of these names.
COLUMNS = ("trial", "round", "rank", "score", "train_score", "fold_scores", "fit_time", "epochs",
           "seed", "error", "warning")


class SearchResult:
    """Every trial of a random search, ranked, and the best estimator refit on all the data.

    trials: list of dicts, one per trial in the order drawn; each has the hyperparameters under
    their own names and `trial`, `round` (0 coarse, 1 refined), `rank` (1 = best; failed trials
    last), `score` (mean validation score; NaN when the trial failed), `train_score`,
    `fold_scores`, `fit_time` (s, all folds), `epochs` (the estimator's n_iter_, mean over folds;
    None when it has none), `seed` (the random_state given to the trial's estimator, or None),
    `error` (None or "ExceptionType: message"), `warning` (the first warning the fit gave).
    """

    __module__ = "fastnn.search"  # its public home: pickles and reprs name it

    def __init__(self, trials, space, refined_space, interrupted, wall_time):
        self.trials = trials
        self.space = space
        self.refined_space = refined_space
        self.interrupted = interrupted
        self.wall_time = wall_time
        self.best_estimator_ = None
        ok = [t for t in trials if t["error"] is None]
        best = min(ok, key=lambda t: t["rank"]) if ok else None
        self.best_index_ = None if best is None else best["trial"]
        self.best_score_ = None if best is None else best["score"]
        self.best_params_ = None if best is None else {k: best[k] for k in sorted(space)}
        self.best_seed_ = None if best is None else best["seed"]

    @property
    def param_names(self):
        return sorted(self.space)

    def ranking(self):
        """The trials best first (failed ones last)."""
        return sorted(self.trials, key=lambda t: t["rank"])

    def to_frame(self):
        """The trial table as a pandas DataFrame (one row per trial, in the order drawn)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("SearchResult.to_frame needs pandas (pip install pandas); "
                              "result.trials is the same table as a list of dicts") from None
        columns = ["trial", "round", "rank", *self.param_names, *COLUMNS[3:]]
        return pd.DataFrame(self.trials, columns=columns)

    def format(self, top=10, labels=None):
        """The ranking as text: the best `top` trials (None: all); `labels` renames columns."""
        rows = self.ranking()[:top] if top else self.ranking()
        names = self.param_names
        labels = labels or {}
        header = ["rank", "trial", *(labels.get(n, n) for n in names), "score", "train", "epochs",
                  "time s"]
        lines = [header]
        for t in rows:
            lines.append([str(t["rank"]), str(t["trial"]), *(_fmt(t[n]) for n in names),
                          _fmt(t["score"]), _fmt(t["train_score"]),
                          "" if t["epochs"] is None else _fmt(t["epochs"]), f"{t['fit_time']:.2f}"])
            if t["error"]:
                lines[-1][len(names) + 2] = "failed"
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        text = ["  ".join(cell.rjust(w) for cell, w in zip(line, widths)) for line in lines]
        failed = [t for t in rows if t["error"]]
        text += [f"trial {t['trial']} failed: {t['error']}" for t in failed]
        return "\n".join(text)

    def __repr__(self):
        n_failed = sum(t["error"] is not None for t in self.trials)
        return (f"SearchResult({len(self.trials)} trials, {n_failed} failed, best_score_="
                f"{self.best_score_!r}, best_params_={self.best_params_!r}"
                f"{', interrupted' if self.interrupted else ''})")

    def plot(self, path):
        """Validation score against each hyperparameter (log x-axis where log-scaled); PNG.

        Needs matplotlib (the `plot` extra). Returns the path written.
        """
        from ..plotting import _pyplot
        plt = _pyplot()
        names = self.param_names
        ok = [t for t in self.trials if t["error"] is None]
        columns = min(len(names), 3)
        rows = -(-len(names) // columns)
        fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), squeeze=False)
        for ax, name in zip(axes.ravel(), names):
            dist = self.space[name]
            for round_, color, label in ((0, "tab:blue", "coarse"), (1, "tab:orange", "refined")):
                chosen = [t for t in ok if t["round"] == round_]
                if not chosen:
                    continue
                values = [t[name] for t in chosen]
                scores = [t["score"] for t in chosen]
                if all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values) \
                        and not isinstance(dist, Choice):
                    ax.scatter(values, scores, color=color, s=18, label=label)
                else:
                    options = _options(dist, [t[name] for t in ok])
                    x = [next(i for i, o in enumerate(options) if same(o, v)) for v in values]
                    ax.scatter(x, scores, color=color, s=18, label=label)
                    ax.set_xticks(range(len(options)), [str(o) for o in options], rotation=30)
                    ax.set_xlim(-0.5, len(options) - 0.5)
            if is_log_scaled(dist):
                ax.set_xscale("log")
            ax.set_xlabel(name + (" (log scale)" if is_log_scaled(dist) else ""))
            ax.set_ylabel("validation score")
        for ax in axes.ravel()[len(names):]:
            ax.set_visible(False)
        if any(t["round"] == 1 for t in ok):
            axes.ravel()[0].legend()
        n_failed = len(self.trials) - len(ok)
        fig.suptitle(f"random search: {len(self.trials)} trials"
                     f"{f', {n_failed} failed (not shown)' if n_failed else ''}")
        fig.tight_layout()
        fig.savefig(str(path), dpi=100)
        plt.close(fig)
        return str(path)


def _options(dist, values):
    if isinstance(dist, Choice):
        return dist.options
    return unique(values)


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
