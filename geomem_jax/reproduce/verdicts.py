"""Verdict rules of `geomem reproduce`: thresholds, metric names, seed statistics, the rules that turn
them into PASS / FAIL / INCONCLUSIVE, and the table row."""

from __future__ import annotations

import dataclasses
import math

from geomem_jax import metric_names as names

PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"
VERDICTS = (PASS, FAIL, INCONCLUSIVE)

# --------------------------------------------------------------------------- thresholds
# (stated, with their reasons, in docs/REPRODUCING.md)
ABOVE_CHANCE_FACTOR = 10.0  # "learned": mean >= 10x chance (capped halfway to 1) and CI above chance
AT_CHANCE_TOL = 0.05  # "at chance": |mean - chance| <= max(ci95, this)
DIFF_TOL = 0.02  # smallest accuracy difference between two arms that counts
RECALL_MIN = 0.95  # "memorized every edge"
LOOKUP_MIN = 0.9  # in-context "reads the edge list": teacher-forced accuracy after the first decision
PAUSE_TARGET = 0.5  # held-out first-decision accuracy whose first crossing is "converged"
PAPER_MARGIN_FRACTION = 0.5  # "in the paper's range": the release's own bf16 C(15) seeds reach down to half its +7.87

# the metrics the claims read (geomem_jax.metric_names), by their short names here
FIRST, DECISION, VALID, EXACT = names.FIRST_TOKEN, names.FIRST_DECISION, names.FIRST_STEP_VALID, names.EXACT_MATCH
MARGIN, NEGATIVE_SHARE, LOGIT_MARGIN = names.MARGIN, names.NEGATIVE_SHARE, names.LOGIT_MARGIN
RECALL_KEYS = names.RECALL_KEYS
PAPER_NN_MARGINS = {"star": 4.08, "grid": 2.51, "cycle": 7.87, "irregular": 8.13}  # E W Eᵀ, the paper's figures


# --------------------------------------------------------------------------- statistics

def stat_of(values) -> dict:
    """mean, ci95 (Student t over seeds), n of finite values (see metrics.mean_ci)."""
    from geomem_jax import metrics

    out = metrics.mean_ci(values)
    return {"mean": out["mean"], "ci95": out["ci95"], "n": out["n"]}


def final_values(summary: dict, metric: str, where=None) -> list:
    """Each experiment's final value of `metric` (None when absent), optionally filtered by hparams."""
    return [e["final"].get(metric) for e in summary["experiments"] if where is None or where(e["hparams"])]


def summary_stat(summary: dict, metric: str, where=None) -> dict:
    return stat_of(final_values(summary, metric, where))


def fmt_stat(s: dict, digits: int = 3, signed: bool = False) -> str:
    if s is None or s.get("mean") is None or s.get("n", 0) == 0:
        return "—"
    sign = "+" if signed else ""
    return f"{s['mean']:{sign}.{digits}f} ± {s['ci95']:.{digits}f} (n={s['n']})"


def _ok(s) -> bool:
    return s is not None and s.get("n", 0) > 0 and s.get("mean") is not None


# --------------------------------------------------------------------------- verdict rules

def learned_threshold(chance: float) -> float:
    """10x chance, capped halfway between chance and 1 (so it stays reachable for small d)."""
    return min(ABOVE_CHANCE_FACTOR * chance, chance + (1.0 - chance) / 2)


def verdict_above_chance(s: dict, chance: float) -> str:
    """PASS: mean >= learned_threshold and mean − ci95 > chance; FAIL: mean + ci95 < threshold."""
    if not _ok(s):
        return INCONCLUSIVE
    threshold = learned_threshold(chance)
    if s["mean"] >= threshold and s["mean"] - s["ci95"] > chance:
        return PASS
    if s["mean"] + s["ci95"] < threshold:
        return FAIL
    return INCONCLUSIVE


def verdict_at_chance(s: dict, chance: float) -> str:
    """PASS: |mean − chance| <= band = max(ci95, AT_CHANCE_TOL); FAIL: mean > chance + band.

    Below the band is INCONCLUSIVE: a choice systematically against the right arm is not chance,
    but neither is it the knowledge the claim is about.
    """
    if not _ok(s):
        return INCONCLUSIVE
    band = max(s["ci95"], AT_CHANCE_TOL)
    if abs(s["mean"] - chance) <= band:
        return PASS
    return FAIL if s["mean"] > chance + band else INCONCLUSIVE


def verdict_not_learned(s: dict, chance: float) -> str:
    """PASS: mean <= chance + max(ci95, AT_CHANCE_TOL); FAIL: it passes verdict_above_chance."""
    if not _ok(s):
        return INCONCLUSIVE
    if s["mean"] <= chance + max(s["ci95"], AT_CHANCE_TOL):
        return PASS
    return FAIL if verdict_above_chance(s, chance) == PASS else INCONCLUSIVE


def verdict_greater(a: dict, b: dict, tol: float = DIFF_TOL) -> str:
    """a > b: PASS if a − b > max(tol, ci), FAIL if b − a > max(tol, ci), ci = sqrt(ci_a² + ci_b²)."""
    if not (_ok(a) and _ok(b)):
        return INCONCLUSIVE
    diff, ci = a["mean"] - b["mean"], math.hypot(a["ci95"], b["ci95"])
    if diff > max(tol, ci):
        return PASS
    if -diff > max(tol, ci):
        return FAIL
    return INCONCLUSIVE


def verdict_sign(s: dict, positive: bool) -> str:
    """positive (> 0): PASS if mean − ci95 > 0, FAIL if mean + ci95 <= 0.
    not positive (<= 0): PASS if mean + ci95 <= 0, FAIL if mean − ci95 > 0. INCONCLUSIVE in between."""
    if not _ok(s):
        return INCONCLUSIVE
    lo, hi = s["mean"] - s["ci95"], s["mean"] + s["ci95"]
    if positive:
        return PASS if lo > 0 else FAIL if hi <= 0 else INCONCLUSIVE
    return PASS if hi <= 0 else FAIL if lo > 0 else INCONCLUSIVE


def verdict_at_least(s: dict, target: float) -> str:
    """verdict_sign of s − target: PASS if mean − CI > target, FAIL if mean + CI <= target."""
    return verdict_sign(dict(s, mean=s["mean"] - target), True) if _ok(s) else INCONCLUSIVE


def verdict_not_below(a: dict, b: dict) -> str:
    """a is not below b: PASS if a − b >= −ci (ci = sqrt(ci_a² + ci_b²)), else FAIL."""
    if not (_ok(a) and _ok(b)):
        return INCONCLUSIVE
    return PASS if a["mean"] - b["mean"] >= -math.hypot(a["ci95"], b["ci95"]) else FAIL


def combine(verdicts) -> str:
    """All PASS -> PASS; any FAIL -> FAIL; otherwise INCONCLUSIVE (also for no verdicts)."""
    verdicts = list(verdicts)
    if verdicts and all(v == PASS for v in verdicts):
        return PASS
    return FAIL if FAIL in verdicts else INCONCLUSIVE


def steps_to_target(curve, target: float = PAUSE_TARGET):
    """First evaluated step with accuracy >= target in a [(step, acc)] curve; None if never."""
    for step, acc in curve:
        if acc is not None and acc >= target:
            return step
    return None


def steps_stat(per_seed_steps, total_steps: int) -> dict:
    """Seeds that never reach the target count as `total_steps` (censored; a lower bound)."""
    values = [total_steps if s is None else s for s in per_seed_steps]
    out = stat_of(values)
    out["censored"] = sum(s is None for s in per_seed_steps)
    return out


def verdict_pauses(steps_by_pause: dict, resolution: int) -> str:
    """More pauses are not slower: t_p = mean steps to target per pause count p.

    faster(p) := t_0 − t_p > max(resolution, ci), slower(p) := t_p − t_0 > max(resolution, ci),
    ci = sqrt(ci_0² + ci_p²). PASS: some p ≥ 1 faster and none slower; FAIL: some slower and
    none faster; INCONCLUSIVE otherwise, or when no run reached the target at all.
    """
    if 0 not in steps_by_pause or len(steps_by_pause) < 2:
        return INCONCLUSIVE
    if all(s["censored"] == s["n"] for s in steps_by_pause.values()):
        return INCONCLUSIVE
    t0 = steps_by_pause[0]
    faster = slower = False
    for p, s in steps_by_pause.items():
        if p == 0:
            continue
        ci = math.hypot(t0["ci95"], s["ci95"])
        faster |= t0["mean"] - s["mean"] > max(resolution, ci)
        slower |= s["mean"] - t0["mean"] > max(resolution, ci)
    if faster and not slower:
        return PASS
    if slower and not faster:
        return FAIL
    return INCONCLUSIVE


def verdict_ladder(rungs_: list[dict]) -> str:
    """Does in-weights path-finding work on the ladder's smallest graph, and is its limit settled?

    threshold(r) = max(0.5, 10 × chance) (`analysis.ladder.threshold`); hi = the upper end of a
    rung's first-decision interval. FAIL: hi < threshold at the smallest rung (it does not work
    even there). PASS: the smallest rung works and the limit is settled (the largest working rung
    is the last rung, or the rung after it has hi < threshold). INCONCLUSIVE otherwise."""
    from geomem_jax.analysis import ladder

    def hi(r):
        return (r.get(ladder.FIRST_DECISION) or {}).get("hi")

    if not rungs_ or hi(rungs_[0]) is None:
        return INCONCLUSIVE
    if hi(rungs_[0]) < ladder.threshold(rungs_[0]):
        return FAIL
    if not rungs_[0]["works"]:
        return INCONCLUSIVE
    last = max(i for i, r in enumerate(rungs_) if r["works"])
    if last == len(rungs_) - 1:
        return PASS
    after = rungs_[last + 1]
    return PASS if hi(after) is not None and hi(after) < ladder.threshold(after) else INCONCLUSIVE


# --------------------------------------------------------------------------- rows

@dataclasses.dataclass
class Row:
    """One line of the claims table, and its entry in the claim's section of REPRODUCTION.md."""

    claim: str
    label: str
    description: str
    measured: str
    chance: str
    paper: str
    rule: str
    verdict: str
    details: list = dataclasses.field(default_factory=list)  # extra markdown lines for the claim section
