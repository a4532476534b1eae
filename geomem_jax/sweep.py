"""The sweep axis: which experiments one compiled program runs, and their stacked inputs.

The sweep is graphs x (hyperparameter points) x seeds, seeds innermost so the seeds of
one sweep point are neighbours. The points are the product of the lr, weight_decay,
init_scale and dropout axes (`sweep.mode = product`) or their element-wise zip
(`sweep.mode = zip`, for a list of hand-picked points such as the paper's knobs). Every array that
crosses vmap has a leading axis S.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from geomem_jax.errors import ConfigError

HPARAMS = ("lr", "weight_decay", "init_scale", "dropout")
GRAPH_KEYS = (
    "family", "degree", "path_length", "branching", "rows", "cols", "num_nodes", "seed",
    "train_fraction", "holdout", "release_dir",
)


@dataclasses.dataclass(frozen=True)
class Experiment:
    index: int
    seed: int
    graph_index: int
    hparams: dict  # lr, weight_decay, init_scale, dropout (floats)

    def coords(self) -> dict:
        """Sweep coordinates except the seed (what seeds are aggregated over)."""
        return {"graph": self.graph_index, **self.hparams}


def default_init_scale(model_cfg) -> float:
    if model_cfg.init_scale > 0:
        return float(model_cfg.init_scale)
    if model_cfg.init not in ("default", "non_geometric"):
        raise ConfigError("model.init", model_cfg.init, "one of default, non_geometric")
    if model_cfg.family == "node2vec":
        return 1.0  # the paper's Node2Vec table starts at N(0, 1)
    return 1.0 if model_cfg.init == "non_geometric" else 0.02


def graph_configs(cfg) -> list[dict]:
    """One graph config per entry of sweep.graphs (overrides of cfg.graph), or just cfg.graph.

    Each also carries graph.edges and graph.self_edges (not sweepable): they pick the dataset
    of a release folder that holds several (graphs.read_release_dir)."""
    base = {k: cfg.graph[k] for k in (*GRAPH_KEYS, "edges", "self_edges")}
    overrides = tuple(cfg.sweep.graphs) or ({},)
    out = []
    for i, override in enumerate(overrides):
        override = dict(override)
        unknown = sorted(set(override) - set(GRAPH_KEYS))
        if unknown:
            raise ConfigError(f"sweep.graphs[{i}]", unknown, f"keys among {', '.join(GRAPH_KEYS)}")
        out.append({**base, **override})
    return out


def _axis(cfg, name: str, default: float) -> tuple[float, ...]:
    values = tuple(float(v) for v in cfg.sweep[name]) or (float(default),)
    return values


def experiments(cfg) -> list[Experiment]:
    seeds = tuple(int(s) for s in cfg.sweep.seeds)
    if not seeds:
        raise ConfigError("sweep.seeds", seeds, "a non-empty tuple of ints")
    if len(set(seeds)) != len(seeds):
        raise ConfigError("sweep.seeds", seeds, "distinct seeds")
    axes = {
        "lr": _axis(cfg, "lr", cfg.opt.lr),
        "weight_decay": _axis(cfg, "weight_decay", cfg.opt.weight_decay),
        "init_scale": _axis(cfg, "init_scale", default_init_scale(cfg.model)),
        "dropout": _axis(cfg, "dropout", cfg.model.dropout),
    }
    _check_ranges(axes)
    num_graphs = len(tuple(cfg.sweep.graphs)) or 1
    points = _hparam_points(axes, cfg.sweep.mode)
    out = []
    for graph_index, hvals, seed in itertools.product(range(num_graphs), points, seeds):
        out.append(Experiment(len(out), seed, graph_index, dict(zip(axes, hvals))))
    return out


def _hparam_points(axes: dict, mode: str) -> list[tuple]:
    """product: every combination; zip: the i-th value of every axis together (length-1 axes broadcast)."""
    if mode == "product":
        return list(itertools.product(*axes.values()))
    if mode != "zip":
        raise ConfigError("sweep.mode", mode, "one of product, zip")
    lengths = {len(v) for v in axes.values()} - {1}
    if len(lengths) > 1:
        sizes = {k: len(v) for k, v in axes.items()}
        raise ConfigError("sweep.mode", "zip", f"axes of equal length (or length 1) to zip; got {sizes}")
    n = lengths.pop() if lengths else 1
    return [tuple(v[i] if len(v) > 1 else v[0] for v in axes.values()) for i in range(n)]


def _check_ranges(axes: dict) -> None:
    bounds = {
        "lr": (lambda v: v > 0, "> 0"),
        "weight_decay": (lambda v: v >= 0, ">= 0"),
        "init_scale": (lambda v: v > 0, "> 0"),
        "dropout": (lambda v: 0 <= v < 1, "in [0, 1)"),
    }
    for name, values in axes.items():
        ok, allowed = bounds[name]
        for v in values:
            if not np.isfinite(v) or not ok(v):
                raise ConfigError(f"sweep.{name} (or its default)", v, allowed)


def hparam_arrays(exps: list[Experiment]) -> dict[str, np.ndarray]:
    return {name: np.array([e.hparams[name] for e in exps], np.float32) for name in HPARAMS}


# On one CPU device, vmapping more than a pair of sequence-model experiments runs each of them slower
# (vmapped 2 x 256 Transformer, 16 experiments: 0.91x one alone; bench/bench_train.py), while pairs run
# one after another inside the same program are faster; Node2Vec's tiny steps gain from a full vmap.
CPU_VMAP_GROUP = 2


def vmap_group(cfg, num_experiments: int, backend: str, devices: int) -> int:
    """Experiments that one vmap computes at once (`sweep.vmap_group`; 0: auto, which is every
    experiment on an accelerator, on a mesh or for Node2Vec, and CPU_VMAP_GROUP on one CPU device)."""
    group = int(cfg.sweep.vmap_group)
    if group == 0:
        one_cpu = backend == "cpu" and devices == 1 and cfg.model.family != "node2vec"
        group = CPU_VMAP_GROUP if one_cpu else num_experiments
    return max(1, min(group, num_experiments))


def over_experiments(fn, group: int | None, num_experiments: int):
    """`fn` of one experiment over the leading sweep axis of its arguments: one vmap over all of
    them (group None, or >= num_experiments), or vmaps over `group` at a time with the groups in
    sequence (lax.map) in the same program, so activations are held for one group only."""
    import jax

    if group is None or group >= num_experiments:
        return jax.vmap(fn)
    return lambda *args: jax.lax.map(lambda xs: fn(*xs), args, batch_size=group)


def seed_keys(exps: list[Experiment]) -> np.ndarray:
    """One uint32 PRNG key per experiment, from its seed only (not its place in the sweep)."""
    import jax

    return np.stack([np.asarray(jax.random.PRNGKey(e.seed)) for e in exps])
