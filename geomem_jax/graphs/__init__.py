"""Graph families of the paper, their path-query splits, and the release text format.

Everything here is plain numpy and deterministic from the graph seed. The package re-exports
its whole public API, so ``from geomem_jax import graphs; graphs.X`` works for every name:

* ``graph``       the Graph type, its methods, graph_summary and the constants;
* ``families``    the generators path_star, tree_star, cycle, grid, irregular;
* ``make``        make_graph (a config section -> Graph) and the split checks;
* ``release_io``  release-folder I/O: prefixes, write_release_dir, read_release_dir.

Conventions
-----------
* ``Graph.forward_edges_Ex2`` holds every undirected edge exactly once, oriented
  "forward" (root->leaf for star/tree graphs, i->i+1 for cycles, right/down for
  grids, u<v for the irregular graph), sorted lexicographically.
* Path-star and tree-star graphs are built on "natural" ids (root 0, then nodes
  level by level / arm by arm) and relabelled with ``rng.permutation(N)``; the
  same generator then shuffles the leaves (or the root's children for subtree
  holdout), so one seed fixes both the labels and the split.
* Release format: ``<prefix>_pretrain.txt`` with one ``u=v`` directed edge per line,
  ``<prefix>_train_<P>.txt`` / ``<prefix>_test_<Q>.txt`` with ``leaf=root,...,leaf``.
  File names either geomem's (``default_prefix``) or the release builder's
  (``release_prefix``, parsed and chosen in release_format.py).
"""

from geomem_jax.graphs.families import cycle, grid, irregular, path_star, tree_star
from geomem_jax.graphs.graph import (
    DEFAULT_TRAIN_FRACTION,
    DIRECTIONS,
    FAMILIES,
    HOLDOUTS,
    MAX_NODES,
    Graph,
    graph_summary,
)
from geomem_jax.graphs.make import check_release_splits, check_split_nonempty, make_graph
from geomem_jax.graphs.release_io import (
    LEAF_PREFIX,
    START_LEAF_PREFIX,
    default_prefix,
    is_from_release,
    read_release_dir,
    release_prefix,
    write_release_dir,
)

__all__ = [
    "DEFAULT_TRAIN_FRACTION", "DIRECTIONS", "FAMILIES", "HOLDOUTS", "LEAF_PREFIX", "MAX_NODES", "START_LEAF_PREFIX",
    "Graph", "check_release_splits", "check_split_nonempty", "cycle", "default_prefix", "graph_summary", "grid",
    "irregular", "is_from_release", "make_graph", "path_star", "read_release_dir", "release_prefix", "tree_star",
    "write_release_dir",
]
