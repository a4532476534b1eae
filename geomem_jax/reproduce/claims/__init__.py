"""The claims of `geomem reproduce`: one `Claim` entry each in REGISTRY, in report order.

A claim declares its runs (`runs(scale, seeds)` -> RunSpecs: a config preset plus overrides, built by the
normal config system) and its verdict rule (`judge(ctx)` -> table rows, reading its runs through
`ctx.run`); the runner and the report writer know nothing else about it. Adding a claim: its two
functions in one of the modules here (paths, geometry, pauses), one entry in REGISTRY, and its test.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from geomem_jax.reproduce.claims import geometry, paths, pauses
from geomem_jax.reproduce.scales import RunSpec, Scale


@dataclasses.dataclass(frozen=True)
class Claim:
    name: str  # the --only name; its own runs live in workdir/<name>/
    title: str  # its section heading in REPRODUCTION.md
    runs: Callable  # (Scale, seeds) -> [RunSpec]: every run it reads, shared runs included
    judge: Callable  # (Context) -> [Row]: its table rows, verdicts computed
    opt_in: bool = False  # run only when named in --only
    plot: Callable | None = None  # (workdir, ctx.plot_data[name]) -> [PNG file names]
    finished: Callable | None = None  # (Context) -> bool: its work outside `runs` is done (the zoo)
    commands: Callable | None = None  # (Context) -> [command lines] besides its runs' `geomem train`


REGISTRY = (
    Claim("in_weights", "In-weights path-star (Transformer, Mamba)",
          runs=paths.runs_in_weights, judge=paths.claim_in_weights),
    Claim("hardest_token", "Hardest token alone, in-weights",
          runs=paths.runs_hardest_token, judge=paths.claim_hardest_token),
    Claim("in_context", "In-context path-star stays at chance",
          runs=paths.runs_in_context, judge=paths.claim_in_context),
    Claim("edge_directions", "Forward vs backward vs both edge directions",
          runs=paths.runs_edge_directions, judge=paths.claim_edge_directions, plot=paths.plot_edge_directions),
    Claim("frozen_embeddings", "Frozen embeddings (associative control) fail",
          runs=paths.runs_frozen_embeddings, judge=paths.claim_frozen_embeddings),
    Claim("tiny_graphs", "Tiny graphs: memorization, geometry, Node2Vec's spectral alignment",
          runs=geometry.runs_tiny_graphs, judge=geometry.claim_tiny_graphs,
          finished=geometry.tiny_graphs_finished, commands=geometry.tiny_graphs_commands),
    Claim("precision", "Precision behind the paper's E W Eᵀ margins: float32 and bfloat16",
          runs=geometry.runs_precision, judge=geometry.claim_precision),
    Claim("knobs", "Knobs that flip associative ↔ geometric memory",
          runs=geometry.runs_knobs, judge=geometry.claim_knobs),
    Claim("pause_tokens", "Pause tokens and convergence speed",
          runs=pauses.runs_pause_tokens, judge=pauses.claim_pause_tokens, plot=pauses.plot_pause_tokens),
    # long (each ≈ 40 min or more on 2 cores): run only when named in --only
    Claim("pause_tokens_long", "Pause tokens on long paths, where the paper used them",
          runs=pauses.runs_pause_tokens_long, judge=pauses.claim_pause_tokens_long,
          plot=pauses.plot_pause_tokens_long, opt_in=True),
    Claim("scale_ladder", "Beyond the paper: how far in-weights path-finding scales",
          runs=paths.runs_scale_ladder, judge=paths.claim_scale_ladder, plot=paths.plot_scale_ladder, opt_in=True),
)
CLAIMS = tuple(c.name for c in REGISTRY)
OPT_IN = tuple(c.name for c in REGISTRY if c.opt_in)
CLAIM_BY_NAME = {c.name: c for c in REGISTRY}
CLAIM_FUNCS = {c.name: c.judge for c in REGISTRY}
CLAIM_TITLES = {c.name: c.title for c in REGISTRY}


def plan(scale: Scale, seeds: int) -> dict[str, list[RunSpec]]:
    """Every claim's runs (shared runs appear under each claim that reads them)."""
    return {c.name: c.runs(scale, seeds) for c in REGISTRY}
