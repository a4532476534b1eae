"""Every metric name that a table, the progress line, the zoo, the report or `reproduce` reads,
defined once with what they need: its short table label, its range and its role.

The producers (evals.py, the programs, the analysis) write the names; a new metric is its
producer plus one `_metric` line below (REGISTRY). The lists below are the consumers' views of REGISTRY; their
orders decide table columns and ranking. Standard library only: the analysis imports no jax.
"""

from __future__ import annotations

import dataclasses

UNIT = (0.0, 1.0)  # accuracies and shares: their intervals are clipped to it
HELD_OUT, MEMORIZATION, GEOMETRY, TRAIN = "held-out", "memorization", "geometry", "train"  # roles


@dataclasses.dataclass(frozen=True)
class Metric:
    name: str
    role: str
    bounds: tuple[float, float] | None = None
    label: str = ""  # its column of the `geomem train` table ("": none)
    ranks: bool = False  # a sweep is ranked by the first of these present (the primary metric)
    family: bool = False  # `name` is a prefix: name + index


_REGISTERED: list[Metric] = []


def _metric(name: str, role: str, bounds=None, label: str = "", ranks: bool = False, family: bool = False) -> str:
    _REGISTERED.append(Metric(name, role, bounds, label, ranks, family))
    return name


# In the order of the ranking and of the table columns.
FIRST_TOKEN = _metric("test/first_token", HELD_OUT, UNIT, "first", ranks=True)  # decoded n1 (chance 1/d)
FIRST_DECISION = _metric("test/first_decision", HELD_OUT, UNIT, ranks=True)  # in-context: argmax over d children
FIRST_STEP_VALID = _metric("test/first_step_valid", HELD_OUT, UNIT)
EXACT_MATCH = _metric("test/exact_match", HELD_OUT, UNIT, "exact", ranks=True)
TOKEN = _metric("test/token", HELD_OUT, UNIT)  # per position: a vector
TOKEN_I = _metric("test/token_", HELD_OUT, UNIT, family=True)  # + i: the vector test/token, flattened
CHILD = _metric("test/child", HELD_OUT, UNIT)
FORCED_ACCURACY = _metric("test/forced_accuracy", HELD_OUT, UNIT)
FORCED_EXACT_MATCH = _metric("test/forced_exact_match", HELD_OUT, UNIT)
FORCED_LOSS = _metric("test/forced_loss", HELD_OUT)
FORCED_TOKEN = _metric("test/forced_token", HELD_OUT, UNIT)  # per position: a vector
RECALL_AT_DEGREE = _metric("edge/recall_at_degree", MEMORIZATION, UNIT, "edges", ranks=True)
RECALL = _metric("edge/recall", MEMORIZATION, UNIT)  # edge recall in older runs
RECALL_AT_5 = _metric("edge/recall_at_5", MEMORIZATION, UNIT, "rec@5", ranks=True)
# the analysis's, over node columns: GEOMETRY keeps them out of MEMORIZATION_KEYS (the trainer's curves)
NODE_RECALL_AT_5 = _metric("edge/node_recall_at_5", GEOMETRY, UNIT)
NODE_RECALL_AT_DEGREE = _metric("edge/node_recall_at_degree", GEOMETRY, UNIT)
NODE2VEC_ALIGNMENT = _metric("node2vec/alignment", GEOMETRY, label="align", ranks=True)
NODE2VEC_PROJ_V = _metric("node2vec/proj_V", GEOMETRY)  # per eigenvector: a vector
NODE2VEC_PROJ_C = _metric("node2vec/proj_C", GEOMETRY)  # per eigenvector: a vector
LEVEL = _metric("geometry/level", GEOMETRY, label="level")
LEAF_FIRSTHOP_GAP = _metric("geometry/leaf_firsthop_gap", GEOMETRY)
MARGIN = _metric("geometry/margin", GEOMETRY)
MARGIN_TOP1 = _metric("geometry/margin_top1", GEOMETRY, UNIT)
RELEASE_MARGIN = _metric("geometry/release_margin", GEOMETRY)  # under the PyTorch release's conventions
RELEASE_MARGIN_TOP1 = _metric("geometry/release_margin_top1", GEOMETRY, UNIT)
LOGIT_MARGIN = _metric("geometry/logit_margin", GEOMETRY)  # Transformer / Mamba: of the bilinear fit of their logits
LOGIT_MARGIN_TOP1 = _metric("geometry/logit_margin_top1", GEOMETRY, UNIT)
NEGATIVE_SHARE = _metric("geometry/negative_mode_share", GEOMETRY, UNIT)
SPECTRAL_ALIGNMENT = _metric("geometry/spectral_alignment", GEOMETRY, UNIT)  # logged in training, at one k:
SPECTRAL_ALIGNMENT_USED_K = _metric("geometry/spectral_alignment_k", GEOMETRY)  # that k (= an analysis k below)
SPECTRAL_ALIGNMENT_K = _metric("spectral/alignment_k", GEOMETRY, UNIT, family=True)  # + k, the eigenvectors used
TRAIN_LOSS = _metric("train/loss", TRAIN)
ANALYSIS_STEP = "analysis/step"  # in summary.json's final: the step the analysis read (not a metric)
REGISTRY = tuple(_REGISTERED)

PRIMARY_METRICS = tuple(m.name for m in REGISTRY if m.ranks)  # held-out accuracy first
TABLE_COLUMNS = tuple((m.name, m.label) for m in REGISTRY if m.label)  # (name, label) of `geomem train`
HEADLINE_METRICS = PRIMARY_METRICS + tuple(m.name for m in REGISTRY if m.role == TRAIN)  # the report's table
PLOTTED_METRICS = tuple(m.name for m in REGISTRY if m.ranks and m.role in (HELD_OUT, MEMORIZATION))  # vs hparams
MEMORIZATION_KEYS = tuple(m.name for m in REGISTRY if m.role == MEMORIZATION)  # the first one logged is plotted
RECALL_KEYS = tuple(m.name for m in REGISTRY if m.role == MEMORIZATION and m.ranks)
# Over training, in-context first: the report's sweep curves (those that were logged).
CURVE_METRICS = (FIRST_DECISION, FIRST_TOKEN, EXACT_MATCH, RECALL_AT_DEGREE, LEVEL, SPECTRAL_ALIGNMENT,
                 LEAF_FIRSTHOP_GAP, LOGIT_MARGIN)

_BOUNDS = {m.name: m.bounds for m in REGISTRY if not m.family}
_FAMILY_BOUNDS = tuple((m.name, m.bounds) for m in REGISTRY if m.family)


def metric_range(name: str) -> tuple[float, float] | None:
    """UNIT for accuracies and shares, None for unbounded or unknown metrics (losses, levels, margins)."""
    if name in _BOUNDS:
        return _BOUNDS[name]
    return next((bounds for prefix, bounds in _FAMILY_BOUNDS if name.startswith(prefix)), None)
