"""Seed intervals on hand-made numbers: clipping to [0, 1], min–max below 3 seeds, the display;
the progress line's held-out figure; train/loss as the mean since the previous evaluation."""

import numpy as np
import pytest

from geomem_jax import metrics


def test_accuracy_interval_is_clipped_to_its_range():
    s = metrics.metric_stats("test/first_token", [0.9, 1.0, 1.0, 0.95])
    assert s["interval"] == "t95" and s["n"] == 4
    assert s["ci95"] == pytest.approx(3.18245 * np.std([0.9, 1, 1, 0.95], ddof=1) / 2, rel=1e-4)  # unclipped
    assert s["hi"] == 1.0 and s["lo"] == pytest.approx(s["mean"] - s["ci95"])
    low = metrics.metric_stats("edge/recall_at_degree", [0.0, 0.0, 0.1])
    assert low["lo"] == 0.0 and low["hi"] == pytest.approx(low["mean"] + low["ci95"])
    loss = metrics.metric_stats("train/loss", [0.0, 0.0, 0.1])  # unbounded: not clipped
    assert loss["lo"] == pytest.approx(loss["mean"] - loss["ci95"]) and loss["lo"] < 0


@pytest.mark.parametrize("values, lo, hi", [([0.6, 0.68], 0.6, 0.68), ([0.3], 0.3, 0.3)])
def test_fewer_than_three_seeds_show_min_max_and_are_marked(values, lo, hi):
    s = metrics.metric_stats("test/first_token", values)
    assert s["interval"] == "min-max" and (s["lo"], s["hi"]) == (lo, hi)
    text = metrics.format_interval(s)
    assert text == f"{np.mean(values):.3f} [{lo:.3f}, {hi:.3f}]*"
    assert "±" not in text  # the t-interval of 2 seeds (here ±0.51) is never shown


def test_the_display_of_three_seeds_and_of_nothing():
    s = metrics.metric_stats("test/exact_match", [0.5, 0.6, 0.7])
    half = 4.30265 * 0.1 / np.sqrt(3)
    assert metrics.format_interval(s) == f"0.600 [{0.6 - half:.3f}, {0.6 + half:.3f}]"
    assert metrics.format_interval(metrics.metric_stats("test/exact_match", [None, float("nan")])) == "-"


def test_points_rank_by_the_primary_metric_ties_broken_by_the_next():
    points = [{"lr": 0.1, "n": 2, "test/first_token": {"mean": 0.5}, "edge/recall_at_degree": {"mean": 0.2}},
              {"lr": 0.2, "n": 2, "test/first_token": {"mean": 0.7}, "edge/recall_at_degree": {"mean": 0.1}},
              {"lr": 0.3, "n": 2, "test/first_token": {"mean": 0.5}, "edge/recall_at_degree": {"mean": 0.9}}]
    assert metrics.primary_metric({"edge/recall_at_degree", "test/first_token"}) == "test/first_token"
    assert [p["lr"] for p in metrics.rank_points(points, "test/first_token")] == [0.2, 0.3, 0.1]


def test_headline_figure_is_the_best_point_mean_and_never_decreases():
    coords = [{"lr": 0.1}, {"lr": 0.1}, {"lr": 0.2}, {"lr": 0.2}]
    figure = metrics.HeadlineFigure(coords)
    record = lambda vals: {"experiments": [{"index": i, "test/first_token": v} for i, v in enumerate(vals)]}
    first = figure.update(record([0.2, 0.4, 0.9, 0.1]))  # point means 0.3 and 0.5; max single run 0.9
    assert first.startswith("first_token 0.500 (best of 2 points, mean of 2 seeds; best so far 0.500)")
    second = figure.update(record([0.2, 0.2, 0.3, 0.3]))
    assert "first_token 0.300" in second and "best so far 0.500" in second


def test_progress_rate_counts_only_steps_that_did_not_compile():
    import io

    stream = io.StringIO()
    bar = metrics.Progress(100, 0, stream)
    bar.update(50, "")  # the first chunk compiled: no rate yet
    bar.count(50, 0.5)
    bar.update(100, "")
    first, second = stream.getvalue().splitlines()
    assert "-- steps/s" in first and "100.0 steps/s" in second
