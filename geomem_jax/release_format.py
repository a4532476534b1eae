"""File names of the PyTorch release's dataset builder: parse them, build them, pick one.

The builder (``data/build_in_weights_datasets.py`` of the release) writes three files per
dataset, ``<prefix>_pretrain.txt``, ``<prefix>_train_<P>.txt`` and ``<prefix>_test_<Q>.txt``,
with a prefix made of a graph stem and three flags:

    star_deg_<d>_deg_tree_<k>_path_<l>_nodes_<N>      path-star (k = 1) or tree-star (k >= 2)
    cycle_N_<n>
    grid_rows_<r>_cols_<c>_nodes_<N>
    irregular_graph_nodes_<N>_edges_<E>
  + _sd_<s><d>_fb_<f><b>_selfedge_<0|1>

``sd`` holds two bits of the release's own flags (the start node in the path prefix, a
directional-edge metadata bit; neither is a seed: the seed is not in the name), ``fb`` the
forward/backward edge flags, ``selfedge`` whether ``u=u`` lines are in the edges file. The
release's trainer rebuilds this name from its command-line flags, so it finds only files
named exactly so. Everything here is string work; reading the files is graphs/release_io.py's.
"""

from __future__ import annotations

import dataclasses
import re

from geomem_jax.errors import ConfigError

NAMINGS = ("geomem", "release")
FB_BY_DIRECTION = {"both": "11", "forward": "10", "backward": "01"}
DIRECTION_BY_FB = {fb: direction for direction, fb in FB_BY_DIRECTION.items()}
DEFAULT_SD = "00"  # `leaf=` path prefixes, no directional metadata: the release's defaults

_STEMS = (
    ("star", r"star_deg_(?P<degree>\d+)_deg_tree_(?P<branching>\d+)_path_(?P<path_length>\d+)"
             r"_nodes_(?P<num_nodes>\d+)"),
    ("cycle", r"cycle_N_(?P<num_nodes>\d+)"),
    ("grid", r"grid_rows_(?P<rows>\d+)_cols_(?P<cols>\d+)_nodes_(?P<num_nodes>\d+)"),
    ("irregular", r"irregular_graph_nodes_(?P<num_nodes>\d+)_edges_(?P<num_edges>\d+)"),
)
_FLAGS = r"_sd_(?P<sd>\d+)_fb_(?P<fb>11|10|01)_selfedge_(?P<selfedge>[01])"
_PREFIX_RES = tuple((stem, re.compile(pattern + _FLAGS)) for stem, pattern in _STEMS)


@dataclasses.dataclass(frozen=True)
class ReleaseName:
    """What a release file prefix says: the family, its sizes and the three flags."""

    family: str  # path_star, tree_star, cycle, grid or irregular (geomem's family names)
    sizes: dict  # the integers of the stem, e.g. {"degree": 20, "branching": 1, ...}
    sd: str
    edges: str  # both, forward or backward
    self_edges: bool

    @property
    def prefix(self) -> str:
        return format_prefix(self)


def parse_prefix(prefix: str) -> ReleaseName | None:
    """The ReleaseName a file prefix spells, or None when it is not a release name."""
    for stem, pattern in _PREFIX_RES:
        m = pattern.fullmatch(prefix)
        if m is None:
            continue
        sizes = {k: int(v) for k, v in m.groupdict().items() if k not in ("sd", "fb", "selfedge")}
        family = stem
        if stem == "star":
            family = "path_star" if sizes["branching"] == 1 else "tree_star"
        return ReleaseName(family, sizes, m["sd"], DIRECTION_BY_FB[m["fb"]], m["selfedge"] == "1")
    return None


def format_prefix(name: ReleaseName) -> str:
    """The release's file prefix for a ReleaseName (the inverse of parse_prefix)."""
    s = name.sizes
    if name.family in ("path_star", "tree_star"):
        stem = f"star_deg_{s['degree']}_deg_tree_{s['branching']}_path_{s['path_length']}_nodes_{s['num_nodes']}"
    elif name.family == "cycle":
        stem = f"cycle_N_{s['num_nodes']}"
    elif name.family == "grid":
        stem = f"grid_rows_{s['rows']}_cols_{s['cols']}_nodes_{s['num_nodes']}"
    elif name.family == "irregular":
        stem = f"irregular_graph_nodes_{s['num_nodes']}_edges_{s['num_edges']}"
    else:
        raise ValueError(f"no release name for graph family {name.family!r}")
    return f"{stem}_sd_{name.sd}_fb_{FB_BY_DIRECTION[name.edges]}_selfedge_{int(name.self_edges)}"


def _fits(name: ReleaseName | None, self_edges, edges) -> bool:
    """A dataset fits the config unless its name says another self-edge or direction setting."""
    if name is None:
        return True
    return (self_edges is None or name.self_edges == bool(self_edges)) and (edges is None or name.edges == edges)


def choose_prefix(prefixes: list[str], where, self_edges=None, edges=None) -> str:
    """The one dataset of a folder that fits ``graph.self_edges`` and ``graph.edges``.

    ``prefixes``: every ``<prefix>`` with a ``<prefix>_pretrain.txt`` in the folder ``where``.
    A prefix that is not a release name fits any setting; ``None`` settings fit anything.
    Raises ConfigError naming the field when no dataset fits, or graph.release_dir with
    the candidates when several do.
    """
    names = {p: parse_prefix(p) for p in prefixes}
    fitting = [p for p in prefixes if _fits(names[p], self_edges, edges)]
    if len(fitting) == 1:
        return fitting[0]
    if not fitting:
        files = ", ".join(f"{p}_pretrain.txt" for p in prefixes)
        self_edge_fits = [p for p in prefixes if _fits(names[p], self_edges, None)]
        field, value = ("graph.edges", edges) if self_edge_fits else ("graph.self_edges", self_edges)
        raise ConfigError(field, value, f"the value one of the datasets in {where} was built with: {files}")
    files = ", ".join(f"{p}_pretrain.txt" for p in fitting)
    raise ConfigError("graph.release_dir", str(where),
                      f"a folder with one dataset for graph.self_edges={self_edges}, graph.edges={edges!r}; "
                      f"it holds {len(fitting)}: {files} (copy one into a folder of its own)")
