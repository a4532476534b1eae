"""The scale ladder: every rung of every preset validates, the rule on hand-made numbers, the smoke
ladder through the CLI (train, analyze: section and figure)."""

import json

import pytest

from geomem_jax import cli, config as config_lib, graphs, sweep
from geomem_jax.analysis import ladder

LADDERS = {"degree": ("degree", (100, 200, 500, 1000, 2000)), "length": ("path_length", (4, 5, 6, 8)),
           "paper_degree": ("degree", (1000, 2000, 5000, 10_000)), "paper_length": ("path_length", (4, 6, 8, 10))}


@pytest.mark.parametrize("preset", [*LADDERS, "smoke"])
def test_every_rung_of_every_preset_validates_and_builds(preset):
    cfg = config_lib.load_config(f"configs/scaling.py:{preset}")
    config_lib.check_config(cfg)
    built = [graphs.make_graph(g) for g in sweep.graph_configs(cfg)]
    assert all(g.family == "path_star" for g in built)
    if preset in LADDERS:
        axis, sizes = LADDERS[preset]
        assert tuple(g[axis] for g in sweep.graph_configs(cfg)) == sizes
        assert len(cfg.sweep.seeds) >= 4
        # one program for the ladder: the same model, optimiser and steps at every rung
        assert {k for g in cfg.sweep.graphs for k in g} == {axis}


def _summary(points, axis="degree", other=5):
    """summary.json of a hand-made ladder: points = [(size, first-decision mean)], 4 seeds each."""
    experiments, aggregate = [], []
    for g, (size, mean) in enumerate(points):
        spec = {"family": "path_star", "degree": size if axis == "degree" else other,
                "path_length": size if axis == "path_length" else other, "seed": 0, "train_fraction": 0.75}
        experiments.append({"index": g, "coords": {"graph": g, "seed": 0}, "graph": {"spec": spec}})
        stat = {"mean": mean, "lo": mean - 0.1, "hi": mean + 0.1, "n": 4, "interval": "t95"}
        aggregate.append({"graph": g, "n": 4, "test/first_token": stat, "test/exact_match": dict(stat)})
    return {"experiments": experiments, "aggregate": aggregate}


def test_largest_working_rung_on_hand_made_numbers():
    # d=10: 0.9 < 10 x chance (1.0): not working although >= 0.5; d=500: below 0.5; d=1000 works again
    summary = _summary([(10, 0.9), (100, 0.7), (200, 0.55), (500, 0.45), (1000, 0.6), (2000, 0.01)])
    assert ladder.ladder_axis(summary) == "degree"
    table = ladder.rungs(summary)
    assert [r["works"] for r in table] == [False, True, True, False, True, False]
    assert [r["chance"] for r in table][:2] == [0.1, 0.01]
    assert ladder.largest_working(table, "degree")["degree"] == 1000
    lines = "\n".join(ladder.ladder_section(summary))
    assert "**Largest working degree: 1000**" in lines and "| 500 | 5 | 4 | 0.0020 |" in lines
    assert ladder.largest_working(ladder.rungs(_summary([(100, 0.4), (200, 0.2)])), "degree") is None
    assert "**No rung works.**" in "\n".join(ladder.ladder_section(_summary([(100, 0.4), (200, 0.2)])))
    # a length ladder: chance is 1/d whatever the length
    lengths = _summary([(4, 0.8), (8, 0.3)], axis="path_length", other=200)
    assert ladder.ladder_axis(lengths) == "path_length"
    assert ladder.largest_working(ladder.rungs(lengths), "path_length")["path_length"] == 4


def test_only_path_star_graphs_differing_in_one_size_are_a_ladder():
    both = _summary([(100, 0.7), (200, 0.5)])
    both["experiments"][1]["graph"]["spec"]["path_length"] = 6  # degree and length both vary
    assert ladder.ladder_axis(both) is None
    cycle = _summary([(100, 0.7), (200, 0.5)])
    for e in cycle["experiments"]:
        e["graph"]["spec"]["family"] = "cycle"
    assert ladder.ladder_axis(cycle) is None
    assert ladder.ladder_axis(_summary([(100, 0.7)])) is None  # one graph
    assert ladder.ladder_section(_summary([(100, 0.7)])) == []


def test_smoke_ladder_trains_and_its_report_names_the_largest_working_rung(tmp_path, capsys):
    workdir = tmp_path / "ladder"
    assert cli.main(["train", "--config=configs/scaling.py:smoke", f"--workdir={workdir}", "--no-progress"]) == 0
    assert cli.main(["analyze", f"--workdir={workdir}"]) == 0
    summary = json.loads((workdir / "summary.json").read_text())
    table = ladder.rungs(summary)
    assert [r["degree"] for r in table] == [4, 8] and all(r["n"] == 2 for r in table)
    report = (workdir / "report" / "report.md").read_text()
    assert "## Scale ladder over `degree`" in report and "![scale ladder](scale_ladder.png)" in report
    assert (workdir / "report" / "scale_ladder.png").stat().st_size > 10_000
