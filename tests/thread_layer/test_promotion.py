"""Promotion of a trained version, and the one table of metric directions it shares with the
model search."""

from __future__ import annotations

import numpy as np
import pytest

from entity.project import LOWER_IS_BETTER, METRICS, lower_is_better
from thread_layer.promotion import is_better, metric_value


def test_the_model_search_and_promotion_read_one_table_of_metric_directions():
    from project_library import training

    assert training.LOWER_IS_BETTER is LOWER_IS_BETTER


def test_every_error_a_regression_records_is_better_lower():
    from project_library.evaluation import regression_metrics

    y = np.array([1.0, 2.0, 3.0, 4.0])
    recorded = regression_metrics(y, y + 0.5, y)
    assert {name for name in recorded if lower_is_better(name)} == \
        {"mse", "rmse", "mae", "mape", "baseline_rmse"}
    assert not lower_is_better("r2")
    assert {m for m in METRICS["classification"] if lower_is_better(m)} == {"log_loss"}


@pytest.mark.parametrize("metric", sorted(LOWER_IS_BETTER))
def test_a_lower_error_wins_promotion(metric):
    assert is_better({metric: 1.0}, {metric: 2.0}, metric)
    assert not is_better({metric: 2.0}, {metric: 1.0}, metric)


def test_a_higher_score_wins_promotion_and_f1_means_macro_f1():
    assert is_better({"f1_macro": 0.9}, {"f1_macro": 0.8}, "f1")
    assert not is_better({"r2": 0.1}, {"r2": 0.5}, "r2")
    assert is_better({"r2": 0.5}, {"r2": 0.5}, "r2")  # a tie promotes the newer version
    assert metric_value({"f1_macro": 0.7}, "f1") == 0.7
    assert is_better({"rmse": 3.0}, {}, "rmse") and not is_better({}, {"rmse": 3.0}, "rmse")
