"""Graphs from a config section: make_graph dispatches a ``graph`` config (mapping or ConfigDict)
to a family generator or to the release-folder reader, and checks the resulting path splits
(check_split_nonempty for generated graphs, check_release_splits for graphs read from files).
"""

from __future__ import annotations

from geomem_jax.errors import ConfigError
from geomem_jax.graphs.families import cycle, grid, irregular, path_star, tree_star
from geomem_jax.graphs.graph import DEFAULT_TRAIN_FRACTION, FAMILIES, Graph
from geomem_jax.graphs.release_io import read_release_dir


def _cfg_get(cfg, key, default=None):
    """cfg[key] for a dict or ConfigDict; ``default`` when absent or None."""
    try:
        value = cfg[key]
    except (KeyError, AttributeError, TypeError):
        return default
    return default if value is None else value


def _require(cfg, key):
    value = _cfg_get(cfg, key)
    if value is None:
        raise ConfigError(f"graph.{key}", None, "a value (required for this family)")
    return value


def make_graph(graph_cfg) -> Graph:
    """Build the graph a config section describes.

    ``graph_cfg`` is a mapping or ml_collections.ConfigDict with keys family, degree,
    path_length, branching, rows, cols, num_nodes, seed, train_fraction, holdout,
    release_dir, self_edges, edges. A non-empty ``release_dir`` is read with
    :func:`read_release_dir` (the dataset matching ``self_edges`` and ``edges``) and the
    family generator is ignored. Raises ConfigError when a family with paths would have
    no held-out (test) paths, or a release dataset has one path split but not the other.
    """
    release_dir = _cfg_get(graph_cfg, "release_dir")
    if release_dir not in (None, ""):
        graph = read_release_dir(release_dir, self_edges=_cfg_get(graph_cfg, "self_edges"),
                                 edges=_cfg_get(graph_cfg, "edges"))
        check_release_splits(graph)
        return graph

    family = _cfg_get(graph_cfg, "family")
    seed = _cfg_get(graph_cfg, "seed", 0)
    frac = _cfg_get(graph_cfg, "train_fraction", DEFAULT_TRAIN_FRACTION)
    if family == "path_star":
        graph = path_star(_require(graph_cfg, "degree"), _require(graph_cfg, "path_length"),
                          seed=seed, train_fraction=frac)
    elif family == "tree_star":
        graph = tree_star(_require(graph_cfg, "degree"), _require(graph_cfg, "path_length"),
                          _require(graph_cfg, "branching"), seed=seed, train_fraction=frac,
                          holdout=_cfg_get(graph_cfg, "holdout", "leaf"))
    elif family == "cycle":
        graph = cycle(_require(graph_cfg, "num_nodes"))
    elif family == "grid":
        graph = grid(_require(graph_cfg, "rows"), _require(graph_cfg, "cols"))
    elif family == "irregular":
        graph = irregular()
    else:
        raise ConfigError("graph.family", family,
                          f"one of {list(FAMILIES)} (or set graph.release_dir)")
    check_split_nonempty(graph)
    return graph


def check_release_splits(graph: Graph) -> None:
    """Raise ConfigError("graph.release_dir") when a dataset read from files has train paths
    but no test paths or the other way round (the release's builder writes both)."""
    num_train, num_test = graph.train_paths_PxL.shape[0], graph.test_paths_QxL.shape[0]
    if (num_train > 0) == (num_test > 0):
        return
    prefix = graph.spec["prefix"]
    have, missing = (f"train_{num_train}", "test_<Q>") if num_train else (f"test_{num_test}", "train_<P>")
    raise ConfigError("graph.release_dir", graph.spec["release_dir"],
                      f"a folder with {prefix}_{missing}.txt beside {prefix}_{have}.txt "
                      "(the release's builder writes both path splits)")


def check_split_nonempty(graph: Graph) -> None:
    """Raise ConfigError("graph.train_fraction") when a graph with paths has no test paths."""
    if graph.has_paths and graph.test_paths_QxL.shape[0] == 0:
        num_leaves = graph.train_paths_PxL.shape[0]
        raise ConfigError("graph.train_fraction", graph.spec.get("train_fraction"),
                          f"a fraction leaving at least one of the {num_leaves} leaves "
                          "held out for testing")
