"""Figures over several seeds with 95% confidence intervals, from per-problem results.

A method's accuracy on held-out problems varies with two things: which problems were drawn (a data seed) and how
training went (a training seed). Each seed here is one whole run (its own data and training) whose models were all
evaluated on the same problems, so each run gives a matrix of 0/1 results, one row per problem and one column per
model. Intervals come from a two-level bootstrap: draw the runs with replacement, then the problems within each
drawn run with replacement, keeping each problem's row whole, so that differences between models are *paired*
(the same problems on both sides) and a difference between identical models is exactly 0.

    >>> import numpy as np
    >>> runs = [np.array([[1, 1], [0, 1], [1, 1], [0, 0]]), np.array([[1, 1], [1, 1], [0, 1], [0, 0]])]
    >>> accuracy(runs, 1).estimate           # model 1: 3 of 4 right in each run
    0.75
    >>> paired_difference(runs, 1, 0).estimate
    0.25
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

LEVEL = 0.95
NUM_RESAMPLES = 2000


@dataclass(frozen=True)
class Estimate:
    """A figure over runs: its mean over runs, its smallest run, and a 95% bootstrap interval for the mean."""

    estimate: float
    minimum: float
    low: float
    high: float
    runs: int

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def as_dict(self) -> dict:
        return asdict(self)


def _check(runs: Sequence[np.ndarray]) -> list[np.ndarray]:
    if not runs:
        raise ValueError("no runs: give one matrix of per-problem results per seed.")
    matrices = [np.asarray(r, dtype=float) for r in runs]
    for i, m in enumerate(matrices):
        if m.ndim != 2 or m.shape[0] == 0:
            raise ValueError(f"run {i}: expected a (problems x models) matrix with at least one problem, got shape "
                             f"{m.shape}.")
    if len({m.shape[1] for m in matrices}) != 1:
        raise ValueError("every run must hold the same models (columns).")
    return matrices


def bootstrap(runs: Sequence[np.ndarray], per_run: Callable[[np.ndarray], float], seed: int = 0,
              num_resamples: int = NUM_RESAMPLES, level: float = LEVEL) -> Estimate:
    """`per_run(matrix)` averaged over runs, with its minimum over runs and a two-level bootstrap interval."""
    matrices = _check(runs)
    values = np.array([per_run(m) for m in matrices])
    rng = np.random.default_rng(seed)
    resampled = np.empty(num_resamples)
    for b in range(num_resamples):
        drawn = rng.integers(len(matrices), size=len(matrices))
        resampled[b] = np.mean([per_run(matrices[i][rng.integers(len(matrices[i]), size=len(matrices[i]))])
                                for i in drawn])
    tail = (1 - level) / 2
    low, high = np.quantile(resampled, [tail, 1 - tail])
    return Estimate(float(values.mean()), float(values.min()), float(low), float(high), len(matrices))


def accuracy(runs: Sequence[np.ndarray], model: int, **kwargs) -> Estimate:
    """Share of problems model `model` (a column) answers right."""
    return bootstrap(runs, lambda m: float(m[:, model].mean()), **kwargs)


def paired_difference(runs: Sequence[np.ndarray], model: int, other: int, **kwargs) -> Estimate:
    """Accuracy of `model` minus accuracy of `other`, on the same problems (points of accuracy, as a share)."""
    return bootstrap(runs, lambda m: float((m[:, model] - m[:, other]).mean()), **kwargs)


def errors_removed(runs: Sequence[np.ndarray], model: int, base: int, **kwargs) -> Estimate:
    """Share of the base model's errors that `model` no longer makes: (errors of base - errors of model) / errors of
    base, per run (0 for a run whose base makes no error)."""
    def share(m: np.ndarray) -> float:
        base_errors = 1.0 - m[:, base].mean()
        return float((base_errors - (1.0 - m[:, model].mean())) / base_errors) if base_errors > 0 else 0.0

    return bootstrap(runs, share, **kwargs)


__all__ = ["Estimate", "accuracy", "bootstrap", "errors_removed", "paired_difference"]
