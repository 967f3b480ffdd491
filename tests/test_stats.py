"""Seeds and intervals (mathalign.stats) on inputs whose answers are known."""

import doctest

import numpy as np
import pytest

from mathalign import stats


def runs_of(*columns_per_run):
    return [np.array(columns).T for columns in columns_per_run]


def test_the_interval_contains_a_known_mean_and_narrows_with_more_problems():
    rng = np.random.default_rng(1)
    wide = stats.accuracy([rng.random((100, 1)) < 0.7 for _ in range(3)], 0)
    narrow = stats.accuracy([rng.random((5000, 1)) < 0.7 for _ in range(3)], 0)
    assert narrow.low < 0.7 < narrow.high and abs(narrow.estimate - 0.7) < 0.02
    assert wide.low <= wide.estimate <= wide.high
    assert narrow.high - narrow.low < wide.high - wide.low


def test_a_paired_difference_between_identical_models_is_exactly_zero():
    rng = np.random.default_rng(2)
    runs = []
    for _ in range(3):
        column = rng.random(300) < 0.6
        runs.append(np.stack([column, column], axis=1))
    difference = stats.paired_difference(runs, 1, 0)
    assert (difference.estimate, difference.low, difference.high) == (0.0, 0.0, 0.0)
    assert not difference.excludes_zero()


def test_a_model_right_wherever_the_other_is_wrong_leads_with_an_interval_above_zero():
    # Base right on 60 of 100 problems; the method right on those and on 30 more, in each of three runs.
    base = np.r_[np.ones(60), np.zeros(40)]
    method = np.r_[np.ones(90), np.zeros(10)]
    runs = runs_of(*[(base, method)] * 3)
    removed = stats.errors_removed(runs, 1, 0)
    assert removed.estimate == pytest.approx(0.75)  # 30 of the base's 40 errors
    lead = stats.paired_difference(runs, 1, 0)
    assert lead.estimate == pytest.approx(0.30) and lead.excludes_zero()


def test_minimum_is_the_worst_run_and_the_mean_is_over_runs():
    runs = runs_of((np.r_[np.ones(8), np.zeros(2)],), (np.r_[np.ones(6), np.zeros(4)],))
    estimate = stats.accuracy(runs, 0)
    assert (estimate.estimate, estimate.minimum, estimate.runs) == (pytest.approx(0.7), pytest.approx(0.6), 2)


@pytest.mark.parametrize("runs, message", [
    ([], "no runs"),
    ([np.zeros((0, 2))], "at least one problem"),
    ([np.zeros((3, 2)), np.zeros((3, 3))], "same models"),
])
def test_bad_input_is_refused(runs, message):
    with pytest.raises(ValueError, match=message):
        stats.accuracy(runs, 0)


def test_the_module_examples_hold():
    assert doctest.testmod(stats).failed == 0
