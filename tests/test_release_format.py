"""The release's dataset-builder layout: its file names, both variants side by side, every family.

The fixtures are written here: star and tree-star datasets by geomem's own writer under the
release's names, the cycle/grid/irregular path files (walks between arbitrary nodes, as the
release's builder makes them) by hand-written helpers. Nothing is downloaded.
"""

import random

import numpy as np
import pytest

from geomem_jax import cli, graphs, release_format
from geomem_jax.errors import ConfigError, ReleaseFormatError, UserError

STAR_PREFIX = "star_deg_4_deg_tree_1_path_5_nodes_17_sd_00_fb_11_selfedge_{}"


# ----------------------------------------------------------------------------- names


@pytest.mark.parametrize("prefix, family, sizes", [
    ("star_deg_20_deg_tree_1_path_5_nodes_81_sd_00_fb_11_selfedge_0", "path_star",
     {"degree": 20, "branching": 1, "path_length": 5, "num_nodes": 81}),
    ("star_deg_2_deg_tree_2_path_4_nodes_15_sd_10_fb_10_selfedge_1", "tree_star",
     {"degree": 2, "branching": 2, "path_length": 4, "num_nodes": 15}),
    ("cycle_N_15_sd_00_fb_01_selfedge_0", "cycle", {"num_nodes": 15}),
    ("grid_rows_4_cols_4_nodes_16_sd_00_fb_11_selfedge_1", "grid", {"rows": 4, "cols": 4, "num_nodes": 16}),
    ("irregular_graph_nodes_16_edges_20_sd_00_fb_11_selfedge_0", "irregular", {"num_nodes": 16, "num_edges": 20}),
])
def test_release_names_parse_and_format_back(prefix, family, sizes):
    name = release_format.parse_prefix(prefix)
    assert name.family == family and name.sizes == sizes
    assert name.edges == release_format.DIRECTION_BY_FB[prefix.split("_fb_")[1][:2]]
    assert name.self_edges == prefix.endswith("_1") and name.prefix == prefix


@pytest.mark.parametrize("prefix", ["path_star_d4_l5_s0", "cycle_N_15", "cycle_N_15_sd_00_fb_00_selfedge_0",
                                    "cycle_N_15_sd_00_fb_11_selfedge_2", "x_cycle_N_15_sd_00_fb_11_selfedge_0"])
def test_other_prefixes_are_not_release_names(prefix):
    assert release_format.parse_prefix(prefix) is None


@pytest.mark.parametrize("graph, self_edges, direction, want", [
    (graphs.path_star(20, 5), False, "both", "star_deg_20_deg_tree_1_path_5_nodes_81_sd_00_fb_11_selfedge_0"),
    (graphs.tree_star(2, 4, 2), True, "forward", "star_deg_2_deg_tree_2_path_4_nodes_15_sd_00_fb_10_selfedge_1"),
    (graphs.cycle(15), False, "backward", "cycle_N_15_sd_00_fb_01_selfedge_0"),
    (graphs.grid(4, 4), False, "both", "grid_rows_4_cols_4_nodes_16_sd_00_fb_11_selfedge_0"),
    (graphs.irregular(), True, "both", "irregular_graph_nodes_16_edges_20_sd_00_fb_11_selfedge_1"),
])
def test_release_prefix_of_generated_graphs(graph, self_edges, direction, want):
    assert graphs.release_prefix(graph, direction, self_edges) == want


# ----------------------------------------------------------------------------- builder-layout fixtures


def _cycle_paths(n: int, length: int) -> list[list[int]]:
    return [[(s + k) % n for k in range(length)] for s in range(n)]


def _grid_paths(rows: int, cols: int, length: int) -> list[list[int]]:
    """Straight runs both ways, as the release's grid builder starts with."""
    runs = []
    for r in range(rows):
        for c in range(cols - length + 1):
            run = [r * cols + c + k for k in range(length)]
            runs += [run, run[::-1]]
    for c in range(cols):
        for r in range(rows - length + 1):
            run = [(r + k) * cols + c for k in range(length)]
            runs += [run, run[::-1]]
    return runs


IRREGULAR_WALKS = [[0, 1, 3, 4, 5], [12, 13, 14, 12, 15], [8, 5, 6, 7, 8], [11, 0, 1, 2, 3], [15, 14, 13, 12, 14]]


def _with_paths(graph, paths, seed=0):
    """The graph with release-style path queries: shuffled, first floor(0.75*n) train."""
    paths = list(paths)
    random.Random(seed).shuffle(paths)
    cut = int(len(paths) * 0.75)
    return graphs.Graph(graph.family, graph.num_nodes, graph.forward_edges_Ex2, None,
                        np.array(paths[:cut]), np.array(paths[cut:]), graph.spec)


FAMILIES = {
    "path_star": lambda: graphs.path_star(4, 5, seed=0),
    "tree_star": lambda: graphs.tree_star(2, 4, 2, seed=1),
    "tree_star_subtree": lambda: graphs.tree_star(4, 3, 2, seed=2, holdout="subtree"),
    "cycle": lambda: _with_paths(graphs.cycle(15), _cycle_paths(15, 5)),
    "grid": lambda: _with_paths(graphs.grid(4, 4), _grid_paths(4, 4, 4)),
    "irregular": lambda: _with_paths(graphs.irregular(), IRREGULAR_WALKS),
}


def _builder_folder(graph, folder, direction="both"):
    """Both variants side by side, as the release's builder leaves them; {self_edges: files}."""
    return {se: graphs.write_release_dir(graph, folder, direction=direction, self_edges=se, naming="release")
            for se in (False, True)}


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("self_edges", [False, True])
def test_builder_folder_reads_the_variant_of_graph_self_edges(family, self_edges, tmp_path):
    g = FAMILIES[family]()
    files = _builder_folder(g, tmp_path)
    assert len(list(tmp_path.iterdir())) == 6
    r = graphs.make_graph({"family": "cycle", "num_nodes": 3, "release_dir": str(tmp_path),
                           "self_edges": self_edges, "edges": "both"})
    assert r.spec["prefix"] == files[self_edges][0].name[: -len("_pretrain.txt")]
    assert r.family == g.family and r.spec["self_edges"] == self_edges and r.spec["edges"] == "both"
    assert r.num_nodes == g.num_nodes and r.root == g.root
    np.testing.assert_array_equal(r.forward_edges_Ex2, g.forward_edges_Ex2)
    np.testing.assert_array_equal(r.train_paths_PxL, g.train_paths_PxL)
    np.testing.assert_array_equal(r.test_paths_QxL, g.test_paths_QxL)
    if family in ("cycle", "grid", "irregular"):
        assert r.root is None and r.has_paths  # paths between arbitrary nodes: no single root


def test_cycle_path_files_between_arbitrary_nodes(tmp_path):
    name = "cycle_N_15_sd_00_fb_11_selfedge_0"
    graphs.write_release_dir(graphs.cycle(15), tmp_path, naming="release")
    paths = _cycle_paths(15, 5)
    release_lines = lambda chosen: "".join(f"{p[-1]}=" + ",".join(map(str, p)) + "\n" for p in chosen)
    (tmp_path / f"{name}_train_11.txt").write_text(release_lines(paths[:11]))
    (tmp_path / f"{name}_test_4.txt").write_text(release_lines(paths[11:]))
    assert (tmp_path / f"{name}_test_4.txt").read_text().splitlines()[-1] == "3=14,0,1,2,3"
    assert (tmp_path / f"{name}_train_11.txt").read_text().splitlines()[-1] == "14=10,11,12,13,14"
    g = graphs.make_graph({"release_dir": str(tmp_path), "self_edges": False, "edges": "both"})
    assert g.family == "cycle" and g.root is None and g.path_length == 5
    assert g.train_paths_PxL.shape == (11, 5) and g.test_paths_QxL.shape == (4, 5)
    assert graphs.graph_summary(g)["spec"]["num_nodes"] == 15


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("direction", graphs.DIRECTIONS)
def test_release_geomem_release_is_byte_identical(family, direction, tmp_path):
    src, out = tmp_path / "release", tmp_path / "again"
    files = _builder_folder(FAMILIES[family](), src, direction=direction)
    for self_edges, written in files.items():
        r = graphs.read_release_dir(src, self_edges=self_edges, edges=direction)
        again = graphs.write_release_dir(r, out / str(self_edges), direction=r.spec["edges"],
                                         self_edges=r.spec["self_edges"], naming="release")
        assert [p.name for p in again] == [p.name for p in written]
        for p, q in zip(written, again):
            assert p.read_bytes() == q.read_bytes()


def test_hand_written_release_files_round_trip(tmp_path):
    # G(2, 3), root 0, arms 0-1-2 and 0-3-4; `start,leaf=` prefixes (sd bit 1) and a self-edge block.
    name = "star_deg_2_deg_tree_1_path_3_nodes_5_sd_10_fb_11_selfedge_1"
    texts = {
        f"{name}_pretrain.txt": "0=1\n0=3\n1=2\n3=4\n1=0\n3=0\n2=1\n4=3\n0=0\n1=1\n2=2\n3=3\n4=4\n",
        f"{name}_train_1.txt": "0,2=0,1,2\n",
        f"{name}_test_1.txt": "0,4=0,3,4\n",
    }
    for file, text in texts.items():
        (tmp_path / file).write_text(text)
    g = graphs.read_release_dir(tmp_path)
    assert g.family == "path_star" and g.root == 0 and g.spec["path_prefix"] == "start,leaf"
    assert g.spec["degree"] == 2 and g.spec["self_edges"]
    written = graphs.write_release_dir(g, tmp_path / "out", direction="both", self_edges=True, naming="release")
    assert {p.name: p.read_text() for p in written} == texts


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_geomem_release_geomem_keeps_the_graph(family, tmp_path):
    g = FAMILIES[family]()
    graphs.write_release_dir(g, tmp_path, direction="forward", naming="release")
    r = graphs.read_release_dir(tmp_path)
    assert r.spec["edges"] == "forward" and r.root == g.root and r.family == g.family
    np.testing.assert_array_equal(r.forward_edges_Ex2, g.forward_edges_Ex2)
    np.testing.assert_array_equal(r.all_paths(), g.all_paths())


# ----------------------------------------------------------------------------- refusals


def test_ambiguous_folder_names_the_candidates(tmp_path, capsys):
    graphs.write_release_dir(graphs.path_star(4, 5), tmp_path, naming="release")
    graphs.write_release_dir(graphs.path_star(3, 5), tmp_path, naming="release")
    with pytest.raises(ConfigError) as info:
        graphs.make_graph({"release_dir": str(tmp_path), "self_edges": False, "edges": "both"})
    msg = str(info.value)
    assert info.value.field == "graph.release_dir" and "\n" not in msg
    assert "star_deg_4_deg_tree_1_path_5_nodes_17_sd_00_fb_11_selfedge_0_pretrain.txt" in msg
    assert "star_deg_3_deg_tree_1_path_5_nodes_13_sd_00_fb_11_selfedge_0_pretrain.txt" in msg
    rc = cli.main(["export-graph", "--config=configs/pathstar.py:smoke", f"--config.graph.release_dir={tmp_path}",
                   f"--out={tmp_path / 'out'}"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and err.startswith("geomem: error: graph.release_dir=")
    assert not (tmp_path / "out").exists()
    # Geomem-named datasets are candidates too.
    with pytest.raises(ConfigError, match="more than one|holds 2"):
        d = tmp_path / "plain"
        graphs.write_release_dir(graphs.cycle(5), d)
        graphs.write_release_dir(graphs.cycle(6), d)
        graphs.read_release_dir(d)


@pytest.mark.parametrize("cfg, field", [
    ({"self_edges": False, "edges": "both"}, "graph.self_edges"),
    ({"self_edges": True, "edges": "forward"}, "graph.edges"),
])
def test_no_dataset_fits_the_config(cfg, field, tmp_path):
    graphs.write_release_dir(graphs.path_star(4, 5), tmp_path, self_edges=True, naming="release")
    with pytest.raises(ConfigError) as info:
        graphs.make_graph({"release_dir": str(tmp_path), **cfg})
    assert info.value.field == field and STAR_PREFIX.format(1) in str(info.value)


@pytest.mark.parametrize("missing, needle", [("test", "_test_<Q>.txt beside"), ("train", "_train_<P>.txt beside")])
def test_missing_split_file_is_refused(missing, needle, tmp_path):
    _builder_folder(graphs.path_star(4, 5), tmp_path)
    next(tmp_path.glob(f"{STAR_PREFIX.format(0)}_{missing}_*.txt")).unlink()
    with pytest.raises(ConfigError) as info:
        graphs.make_graph({"release_dir": str(tmp_path), "self_edges": False, "edges": "both"})
    assert info.value.field == "graph.release_dir" and STAR_PREFIX.format(0) + needle in str(info.value)
    # The other variant is complete and still reads.
    assert graphs.make_graph({"release_dir": str(tmp_path), "self_edges": True, "edges": "both"}).has_paths


@pytest.mark.parametrize("rename, edit, reason", [
    (("nodes_17", "nodes_18"), None, "nodes_18"),
    (("path_5", "path_4"), None, "path_4"),
    (("selfedge_0", "selfedge_1"), None, "u=u lines"),
    (("fb_11", "fb_10"), None, "fb_10"),
    (None, ("_train_3", "_train_2"), "name says 2"),
])
def test_release_name_is_checked_against_the_contents(rename, edit, reason, tmp_path):
    for p in graphs.write_release_dir(graphs.path_star(4, 5), tmp_path / "src", naming="release"):
        name = p.name.replace(*rename) if rename else p.name.replace(*edit)
        (tmp_path / name).write_bytes(p.read_bytes())
    with pytest.raises(ReleaseFormatError, match=reason):
        graphs.read_release_dir(tmp_path)


def test_star_named_paths_must_share_the_root(tmp_path):
    name = "star_deg_2_deg_tree_1_path_2_nodes_3_sd_00_fb_11_selfedge_0"
    (tmp_path / f"{name}_pretrain.txt").write_text("0=1\n0=2\n1=0\n2=0\n")
    (tmp_path / f"{name}_train_1.txt").write_text("1=0,1\n")
    (tmp_path / f"{name}_test_1.txt").write_text("0=2,0\n")
    with pytest.raises(ReleaseFormatError, match="start at its root"):
        graphs.read_release_dir(tmp_path)


# ----------------------------------------------------------------------------- the CLI


def test_export_graph_naming_release(tmp_path, capsys):
    out = tmp_path / "out"
    rc = cli.main(["export-graph", "--config=configs/pathstar.py:smoke", "--config.graph.degree=4",
                   "--config.graph.path_length=5", "--naming=release", f"--out={out}"])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == [f"{STAR_PREFIX.format(0)}_{s}.txt"
                                                     for s in ("pretrain", "test_1", "train_3")]
    assert capsys.readouterr().out.split() == [str(out / f"{STAR_PREFIX.format(0)}_{s}.txt")
                                               for s in ("pretrain", "train_3", "test_1")]
    # A release dataset exported again keeps its name and bytes.
    rc = cli.main(["export-graph", "--config=configs/pathstar.py:smoke", f"--config.graph.release_dir={out}",
                   "--naming=release", f"--out={tmp_path / 'again'}"])
    assert rc == 0
    assert {p.name: p.read_bytes() for p in (tmp_path / "again").iterdir()} == {
        p.name: p.read_bytes() for p in out.iterdir()}


@pytest.mark.parametrize("args, needle", [
    (["--naming=torch"], "--naming='torch'"),
    (["--naming=release", "--prefix=x"], "--prefix and --naming=release"),
])
def test_export_graph_bad_naming(args, needle, tmp_path, capsys):
    rc = cli.main(["export-graph", "--config=configs/pathstar.py:smoke", f"--out={tmp_path / 'o'}", *args])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and not (tmp_path / "o").exists()


def test_release_naming_needs_a_known_family(tmp_path):
    graphs.write_release_dir(graphs.path_star(4, 5), tmp_path)
    with pytest.raises(UserError, match="do not say the graph family"):
        graphs.write_release_dir(graphs.read_release_dir(tmp_path), tmp_path / "o", naming="release")
