"""`geomem reproduce`: the paper's headline claims (docs/REPRODUCING.md) as checkable numbers.

    run_reproduce(workdir, only=None, seeds=None, quick=False) -> workdir/REPRODUCTION.md

The reproduction is data: each claim is one `Claim` entry of `claims.REGISTRY` that declares its runs
(`scales.RunSpec`: a config preset plus overrides, `load_config` + `apply_override`) and its verdict
rule. The generic runner (`runner`) trains each run into `workdir/<claim>/<run>` with `loop.run` (a
vmapped sweep over seeds) and analyses it; the claim turns the seed-aggregated numbers into table rows
whose verdict (PASS / FAIL / INCONCLUSIVE) is *computed* by the rules of `verdicts`, whose thresholds
are stated in docs/REPRODUCING.md; `report` writes REPRODUCTION.md and the figures. A run whose
summary.json exists is not trained again; one with a config.json but no summary is resumed from its
last checkpoint, so an interrupted reproduction continues where it stopped. Sizes: `scales.SCALES`.

Claims share runs instead of training the same config twice: the in-weights base run
(hardest-token target, `hardest_token/transformer`) is also the "both edges" arm of
`edge_directions`, the trainable arm of `frozen_embeddings`, the p = 1 arm of
`pause_tokens` and the in-weights contrast of `in_context`; the zoo's E W Eᵀ runs
(`tiny_graphs/<graph>_neural_net`) are the float32 arm of `precision`.

This package re-exports every public name of the former `reproduce.py` module.
"""

from geomem_jax.reproduce.claims import CLAIM_BY_NAME, CLAIM_FUNCS, CLAIM_TITLES, CLAIMS, OPT_IN, REGISTRY, Claim, plan
from geomem_jax.reproduce.claims.geometry import (
    KNOB_POINTS,
    ZOO_ALIGNMENT_K,
    claim_knobs,
    claim_precision,
    claim_tiny_graphs,
)
from geomem_jax.reproduce.claims.paths import (
    claim_edge_directions,
    claim_frozen_embeddings,
    claim_hardest_token,
    claim_in_context,
    claim_in_weights,
    claim_scale_ladder,
    in_context_lookup_values,
)
from geomem_jax.reproduce.claims.pauses import claim_pause_tokens, pause_steps, read_curves
from geomem_jax.reproduce.report import QUICK_MARK, machine_info, table_text, write_plots, write_report
from geomem_jax.reproduce.runner import Context, claim_finished, judged, parse_only, run_reproduce
from geomem_jax.reproduce.scales import SCALES, RunSpec, Scale, base_run
from geomem_jax.reproduce.verdicts import (
    ABOVE_CHANCE_FACTOR,
    AT_CHANCE_TOL,
    DECISION,
    DIFF_TOL,
    EXACT,
    FAIL,
    FIRST,
    INCONCLUSIVE,
    LOGIT_MARGIN,
    LOOKUP_MIN,
    MARGIN,
    NEGATIVE_SHARE,
    PAPER_MARGIN_FRACTION,
    PAPER_NN_MARGINS,
    PASS,
    PAUSE_TARGET,
    RECALL_KEYS,
    RECALL_MIN,
    VALID,
    VERDICTS,
    Row,
    combine,
    final_values,
    fmt_stat,
    learned_threshold,
    stat_of,
    steps_stat,
    steps_to_target,
    summary_stat,
    verdict_above_chance,
    verdict_at_chance,
    verdict_at_least,
    verdict_greater,
    verdict_ladder,
    verdict_not_below,
    verdict_not_learned,
    verdict_pauses,
    verdict_sign,
)
from geomem_jax.rundir import config_differences

__all__ = [
    # claims
    "CLAIM_BY_NAME", "CLAIM_FUNCS", "CLAIM_TITLES", "CLAIMS", "OPT_IN", "REGISTRY", "Claim", "plan",
    "KNOB_POINTS", "ZOO_ALIGNMENT_K", "claim_edge_directions", "claim_frozen_embeddings", "claim_hardest_token",
    "claim_in_context", "claim_in_weights", "claim_knobs", "claim_pause_tokens", "claim_pause_tokens_long",
    "claim_precision",
    "claim_scale_ladder", "claim_tiny_graphs", "in_context_lookup_values", "pause_steps", "read_curves",
    # runner and report
    "Context", "claim_finished", "judged", "parse_only", "run_reproduce",
    "QUICK_MARK", "machine_info", "table_text", "write_plots", "write_report",
    # scales
    "SCALES", "RunSpec", "Scale", "base_run", "config_differences",
    # verdicts
    "ABOVE_CHANCE_FACTOR", "AT_CHANCE_TOL", "DECISION", "DIFF_TOL", "EXACT", "FAIL", "FIRST", "INCONCLUSIVE",
    "LOGIT_MARGIN", "LOOKUP_MIN", "MARGIN", "NEGATIVE_SHARE", "PAPER_MARGIN_FRACTION", "PAPER_NN_MARGINS", "PASS",
    "PAUSE_TARGET", "RECALL_KEYS", "RECALL_MIN", "VALID", "VERDICTS", "Row", "combine", "final_values", "fmt_stat",
    "learned_threshold", "stat_of", "steps_stat", "steps_to_target", "summary_stat", "verdict_above_chance",
    "verdict_at_chance", "verdict_at_least", "verdict_greater", "verdict_ladder", "verdict_not_below",
    "verdict_not_learned", "verdict_pauses", "verdict_sign",
]
