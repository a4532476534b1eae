"""Path-star claims: in-weights (Transformer, Mamba), the hardest token alone, in-context at chance, edge
directions, frozen embeddings, and the opt-in scale ladder. Each claim has `runs_<name>(scale, seeds)`
(what it trains) and `claim_<name>(ctx)` (its rows and verdicts); the registry is in claims/__init__.py."""

from __future__ import annotations

import pathlib
from typing import TYPE_CHECKING

from geomem_jax import metric_names as names
from geomem_jax.errors import UserError
from geomem_jax.reproduce.scales import RunSpec, Scale, base_run
from geomem_jax.reproduce.verdicts import (
    AT_CHANCE_TOL,
    DECISION,
    DIFF_TOL,
    EXACT,
    FAIL,
    FIRST,
    INCONCLUSIVE,
    LOOKUP_MIN,
    PASS,
    VALID,
    Row,
    _ok,
    fmt_stat,
    learned_threshold,
    stat_of,
    summary_stat,
    verdict_above_chance,
    verdict_at_chance,
    verdict_greater,
    verdict_ladder,
    verdict_not_learned,
)

if TYPE_CHECKING:
    from geomem_jax.reproduce.runner import Context


# --------------------------------------------------------------------------- runs

def runs_in_weights(scale: Scale, seeds: int) -> list[RunSpec]:
    """The claim-1 Transformer (the scale's full-path recipe) and Mamba (its overrides on that recipe)."""
    spec, overrides = scale.full_path
    return [RunSpec("in_weights/transformer", spec, overrides, seeds),
            RunSpec("in_weights/mamba", spec, (*overrides, *scale.mamba), seeds)]


def runs_hardest_token(scale: Scale, seeds: int) -> list[RunSpec]:
    return [base_run(scale, seeds)]


def runs_in_context(scale: Scale, seeds: int) -> list[RunSpec]:
    """The in-context run, then the in-weights base run (its contrast)."""
    ic_spec, ic_over = scale.in_context
    return [RunSpec("in_context/transformer", ic_spec, ic_over, seeds, analyze=False), base_run(scale, seeds)]


def runs_edge_directions(scale: Scale, seeds: int) -> list[RunSpec]:
    """Forward-only, backward-only, then the base run (both directions)."""
    edges = [base_run(scale, seeds, key=f"edge_directions/{d}", overrides=(("graph.edges", d),))
             for d in ("forward", "backward")]
    return [*edges, base_run(scale, seeds)]


def runs_frozen_embeddings(scale: Scale, seeds: int) -> list[RunSpec]:
    """Frozen token embeddings, then the base run (trainable)."""
    frozen = base_run(scale, seeds, key="frozen_embeddings/frozen", overrides=(("model.freeze_embeddings", "true"),))
    return [frozen, base_run(scale, seeds)]


def runs_scale_ladder(scale: Scale, seeds: int) -> list[RunSpec]:
    """One run per configs/scaling.py ladder of the scale."""
    ladder_seeds = scale.ladder_seeds if seeds == scale.seeds else seeds  # --seeds also sets the ladders'
    return [RunSpec(f"scale_ladder/{name}", spec, (), ladder_seeds) for name, spec in scale.ladders]


# --------------------------------------------------------------------------- judges

def _degree_of(ctx: Context, spec: RunSpec) -> int:
    """d of the run's path-star (chance of the first decision is 1/d)."""
    return int(spec.build().graph.degree)


def _rule_above(chance: float) -> str:
    return (f"PASS if mean ≥ {learned_threshold(chance):.3g} (10× chance, capped halfway to 1) "
            f"and mean − CI > chance; FAIL if mean + CI < {learned_threshold(chance):.3g}")


def claim_in_weights(ctx: Context) -> list[Row]:
    rows = []
    for spec, name in zip(ctx.plan["in_weights"], ("Transformer", "Mamba")):
        summary = ctx.run(spec)
        chance = 1.0 / _degree_of(ctx, spec)
        first, exact = summary_stat(summary, FIRST), summary_stat(summary, EXACT)
        verdict = verdict_above_chance(first, chance)  # exact match is reported beside it
        rows.append(Row(
            "in_weights", f"in-weights path-star, {name}",
            f"{name}: full root→leaf path on held-out leaves (in-weights, mixed edges + 75% of paths).",
            f"first decision {fmt_stat(first)}; exact match {fmt_stat(exact)}",
            f"{chance:.3g} (1/d); exact ≈ 0",
            "held-out exact match up to 100% for Transformer and Mamba",
            _rule_above(chance) + ", on the first decision (exact match is reported, not judged)",
            verdict, [f"- run {ctx.link(spec.key)}: first decision {fmt_stat(first)}, exact match {fmt_stat(exact)}"],
        ))
    return rows


def claim_hardest_token(ctx: Context) -> list[Row]:
    spec = ctx.plan["hardest_token"][0]
    summary = ctx.run(spec)
    chance = 1.0 / _degree_of(ctx, spec)
    first = summary_stat(summary, FIRST)
    return [Row(
        "hardest_token", "hardest token alone, in-weights",
        "Target = n1 only (the node after the root), Transformer.",
        f"first decision {fmt_stat(first)}", f"{chance:.3g} (1/d)",
        "the hardest token alone is learnable in-weights", _rule_above(chance),
        verdict_above_chance(first, chance), [f"- run {ctx.link(spec.key)}"],
    )]


def in_context_lookup_values(summary: dict, path_length: int) -> list:
    """Per experiment: mean teacher-forced accuracy on n2 … n_{ℓ-2}, the nodes read off the edge list
    by the "Clever Hans" lookup (n1 is the decision; the goal can be copied from the query)."""
    keys = [f"{names.FORCED_TOKEN}_{k}" for k in range(2, max(3, path_length - 1))]
    values = []
    for e in summary["experiments"]:
        got = [e["final"].get(k) for k in keys]
        values.append(None if None in got else sum(got) / len(got))
    return values


def claim_in_context(ctx: Context) -> list[Row]:
    ic_spec, base_spec = ctx.plan["in_context"]
    ic, base = ctx.run(ic_spec), ctx.run(base_spec)
    ic_cfg = ic_spec.build()
    chance = 1.0 / ic_cfg.graph.degree
    base_chance = 1.0 / _degree_of(ctx, base_spec)
    decision, exact = summary_stat(ic, DECISION), summary_stat(ic, EXACT)
    lookup = stat_of(in_context_lookup_values(ic, ic_cfg.graph.path_length))
    base_first = summary_stat(base, FIRST)
    at_chance, contrast = verdict_at_chance(decision, chance), verdict_above_chance(base_first, base_chance)
    reads_edges = _ok(lookup) and lookup["mean"] >= LOOKUP_MIN
    verdict = (FAIL if at_chance == FAIL else
               PASS if (at_chance, contrast, reads_edges) == (PASS, PASS, True) else INCONCLUSIVE)
    return [Row(
        "in_context", "in-context path-star at chance",
        f"Fresh random G({ic_cfg.graph.degree}, {ic_cfg.graph.path_length}) per example, edge list in context.",
        f"first decision {fmt_stat(decision)}; later nodes (teacher-forced) {fmt_stat(lookup)} "
        f"(in-weights contrast: {fmt_stat(base_first)})",
        f"{chance:.3g} (1/d)", "in-context first decision stays at chance 1/d",
        f"PASS if |first decision − 1/d| ≤ max(CI, {AT_CHANCE_TOL}), the model reads the edge list (teacher-forced "
        f"accuracy on n2 … n_(ℓ−2) ≥ {LOOKUP_MIN}) and the in-weights run passes the 'learned' rule; "
        "FAIL if the first decision is above that band; INCONCLUSIVE otherwise",
        verdict,
        [f"- run {ctx.link(ic_spec.key)}: first decision (the better-scored of the source's d children) "
         f"{fmt_stat(decision)}, unrestricted first step is a child of the source "
         f"{fmt_stat(summary_stat(ic, VALID))}, later nodes teacher-forced {fmt_stat(lookup)}, "
         f"exact match {fmt_stat(exact)}",
         f"- in-weights contrast {ctx.link(base_spec.key)}: {fmt_stat(base_first)} (chance {base_chance:.3g})"],
    )]


def claim_edge_directions(ctx: Context) -> list[Row]:
    specs = dict(zip(("forward", "backward", "both"), ctx.plan["edge_directions"]))
    stats = {d: summary_stat(ctx.run(s), FIRST) for d, s in specs.items()}
    chance = 1.0 / _degree_of(ctx, specs["both"])
    ctx.plot_data["edge_directions"] = (stats, chance)
    return [Row(
        "edge_directions", "reverse edges needed (both vs forward)",
        "Same in-weights run with edge-memorization data forward-only, backward-only or both.",
        "; ".join(f"{d} {fmt_stat(s)}" for d, s in stats.items()), f"{chance:.3g} (1/d)",
        "reverse edges are needed on large graphs; forward-only edges struggle",
        f"PASS if both − forward > max({DIFF_TOL}, CI of the difference); FAIL if forward − both exceeds it; "
        "INCONCLUSIVE in between (no measurable difference at this size)",
        verdict_greater(stats["both"], stats["forward"]),
        [f"- run {ctx.link(s.key)}: {d}, first decision {fmt_stat(stats[d])}" for d, s in specs.items()],
    )]


def claim_frozen_embeddings(ctx: Context) -> list[Row]:
    frozen_spec, base_spec = ctx.plan["frozen_embeddings"]
    frozen, trainable = summary_stat(ctx.run(frozen_spec), FIRST), summary_stat(ctx.run(base_spec), FIRST)
    chance = 1.0 / _degree_of(ctx, base_spec)
    not_learned, learned = verdict_not_learned(frozen, chance), verdict_above_chance(trainable, chance)
    verdict = PASS if (not_learned, learned) == (PASS, PASS) else FAIL if not_learned == FAIL else INCONCLUSIVE
    return [Row(
        "frozen_embeddings", "frozen embeddings fail",
        "Same in-weights run with the token embeddings frozen at init (associative control).",
        f"frozen {fmt_stat(frozen)}; trainable {fmt_stat(trainable)}", f"{chance:.3g} (1/d)",
        "frozen token embeddings fail the in-weights task",
        f"PASS if frozen mean ≤ chance + max(CI, {AT_CHANCE_TOL}) and the trainable run passes the 'learned' rule; "
        "FAIL if the frozen run itself passes the 'learned' rule",
        verdict,
        [f"- run {ctx.link(frozen_spec.key)}: frozen, first decision {fmt_stat(frozen)}",
         f"- run {ctx.link(base_spec.key)}: trainable, first decision {fmt_stat(trainable)}"],
    )]


def claim_scale_ladder(ctx: Context) -> list[Row]:
    from geomem_jax import metrics
    from geomem_jax.analysis import ladder

    def interval(rung, name=ladder.FIRST_DECISION):
        return metrics.format_interval(rung[name])

    rows, ctx.plot_data["scale_ladder"] = [], []
    for spec in ctx.plan["scale_ladder"]:
        summary = ctx.run(spec)
        axis = ladder.ladder_axis(summary)
        if axis is None:
            raise UserError(f"{ctx.workdir / spec.key}: {spec.config} is not a ladder "
                            "(path-stars differing in one size)")
        rungs_ = ladder.rungs(summary)
        best = ladder.largest_working(rungs_, axis)
        ctx.plot_data["scale_ladder"].append((spec.key.split("/")[-1], rungs_, axis, best))
        symbol = {"degree": "d", "path_length": "ℓ"}[axis]
        cfg = spec.build()
        fixed = (f"ℓ = {cfg.graph.path_length}" if axis == "degree" else f"d = {cfg.graph.degree}")
        measured = "; ".join(f"{symbol}={r[axis]}: {interval(r)}" for r in rungs_)
        best_text = f"largest working {symbol} = {best[axis]} ({interval(best)})" if best else "no rung works"
        rows.append(Row(
            "scale_ladder", f"scale ladder over {axis} ({fixed})",
            f"Held-out first decision per {axis} at {fixed}, one model and budget at every rung "
            f"({cfg.model.family} {cfg.model.layers} × {cfg.model.width}, {cfg.train.steps} steps; {spec.config}).",
            f"{best_text}; {measured}", "1/d per rung",
            "in-weights path-finding works on large path-stars (G(5000, 5), G(10⁴, 6) with GPT-mid); "
            "no curve between sizes",
            f"a rung works if mean ≥ max({ladder.WORKS_MEAN}, {ladder.WORKS_OVER_CHANCE:g}× chance). FAIL if the "
            "smallest rung's CI ends below that; PASS if the smallest rung works and the limit is settled (the "
            "largest working rung is the last, or the next rung's CI ends below its threshold); else INCONCLUSIVE",
            verdict_ladder(rungs_),
            [f"- run {ctx.link(spec.key)}: {symbol} = {r[axis]}: first decision {interval(r)}, exact match "
             f"{interval(r, ladder.EXACT_MATCH)}, {'works' if r['works'] else 'does not work'}" for r in rungs_],
        ))
    return rows


# --------------------------------------------------------------------------- figures

def plot_edge_directions(workdir: pathlib.Path, data) -> list[str]:
    """Bars with 95% CIs of the three arms (data: ({arm: stat}, chance))."""
    import matplotlib.pyplot as plt

    stats, chance = data
    names = list(stats)
    means = [stats[n]["mean"] or 0.0 for n in names]
    cis = [stats[n]["ci95"] or 0.0 for n in names]
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    ax.bar(names, means, yerr=cis, capsize=6, color=["#c44", "#48c", "#4a4"][: len(names)])
    ax.axhline(chance, color="grey", ls=":", lw=0.8, label="chance 1/d")
    ax.set_ylim(0, 1.05), ax.set_ylabel("held-out first decision (mean ± 95% CI)")
    ax.set_title("Edge directions in the training data"), ax.legend(fontsize=8)
    fig.tight_layout(), fig.savefig(workdir / "edge_directions.png", dpi=110), plt.close(fig)
    return ["edge_directions.png"]


def plot_scale_ladder(workdir: pathlib.Path, data) -> list[str]:
    """One figure per ladder (data: [(name, rungs, axis, largest working rung)])."""
    from geomem_jax.analysis import ladder, plots_metrics

    return [plots_metrics.plot_ladder(rungs_, axis, workdir / f"scale_ladder_{name}.png", best,
                                      ladder.WORKS_MEAN, ladder.WORKS_OVER_CHANCE).name
            for name, rungs_, axis, best in data]
