"""Figures of metrics over training and across runs: trajectories, sweeps, curves over training,
geometry vs reasoning and the scale ladder (matplotlib, Agg backend, headless).

Each titles the figure, labels its axes, saves one PNG with `plots._save` and returns its path.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from geomem_jax import metric_names as names  # noqa: E402
from geomem_jax.analysis.plots import _save  # noqa: E402

# ----------------------------------------------------------------------------- over training

def plot_node2vec_trajectories(records, path, title="Node2Vec: projections on eigenvectors over training", max_modes=8):
    """‖Vᵀe_i‖ and ‖Ce_i‖ over steps; records = [{"step", "proj_V": [K], "proj_C": [K]}, ...]."""
    steps = np.array([r["step"] for r in records])
    proj_V_TxK = np.array([r["proj_V"] for r in records], dtype=float)[:, :max_modes]
    proj_C_TxK = np.array([r["proj_C"] for r in records], dtype=float)[:, :max_modes]
    fig, (ax_v, ax_c) = plt.subplots(1, 2, figsize=(11, 4), sharex=True, layout="constrained")
    for i in range(proj_V_TxK.shape[1]):
        ax_v.plot(steps, proj_V_TxK[:, i], label=f"e_{i}")
        ax_c.plot(steps, proj_C_TxK[:, i], label=f"e_{i}")
    ax_v.set_ylabel("‖Vᵀ e_i‖")
    ax_c.set_ylabel("‖C e_i‖")
    ax_v.set_title("embedding projection")
    ax_c.set_title("gradient operator C on e_i")
    for ax in (ax_v, ax_c):
        ax.set_xlabel("training step")
    ax_v.legend(fontsize=7, ncol=2)
    fig.suptitle(title)
    return _save(fig, path)


def plot_memorization_vs_geometry(records, path, memorization_key, level_key, title="Memorization vs geometric level",
                                  accuracy_key=names.FIRST_TOKEN):
    """Panels over training from metrics records: edge memorization, geometric level and, where the
    run has held-out paths, held-out accuracy (`accuracy_key`), on one step axis."""
    keys = [k for k in (memorization_key, level_key, accuracy_key) if any(r.get(k) is not None for r in records)]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.8 * len(keys), 3.8), sharex=True, squeeze=False,
                             layout="constrained")
    for ax, key in zip(axes[0], keys):
        points = np.array([(r["step"], r[key]) for r in records if r.get(key) is not None], dtype=float)
        ax.plot(points[:, 0], points[:, 1], marker="o", markersize=3)
        ax.set_xlabel("training step")
        ax.set_ylabel(key)
        ax.set_title("held-out " + key if key == accuracy_key else key)
        ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    return _save(fig, path)



# ----------------------------------------------------------------------------- sweeps

LOG_AXIS_HPARAMS = ("lr", "weight_decay", "init_scale")
HPARAM_LABELS = {"lr": "learning rate", "weight_decay": "weight decay", "init_scale": "embedding init scale",
                 "dropout": "dropout"}


def _interval_note(points) -> str:
    """Caption of the error bars: what they are, for every n among the points."""
    kinds = {s.get("interval") for _, stats in points for s in stats.values() if s and s.get("mean") is not None}
    if kinds == {"min-max"}:
        return "bars: min–max over seeds (fewer than 3 seeds)"
    if "min-max" in kinds:
        return "bars: 95% t-interval, or min–max where fewer than 3 seeds (hollow markers)"
    return "bars: 95% t-interval over seeds, clipped to the metric's range"


def _error_bars(stats: list[dict]) -> np.ndarray:
    means = np.array([s["mean"] for s in stats], float)
    lo = np.array([s.get("lo", s["mean"]) for s in stats], float)
    hi = np.array([s.get("hi", s["mean"]) for s in stats], float)
    return np.vstack([np.maximum(means - lo, 0.0), np.maximum(hi - means, 0.0)])


def plot_metric_vs_hparam(points, hparam: str, metric_names, path, bounds_of=None, title=None):
    """One panel per metric: its mean over seeds (± interval) against `hparam`, one line per value
    of the other swept coordinates. points = [(coords, {metric: stats})], stats as metrics.mean_ci."""
    metric_names = list(metric_names)
    others = [k for k in dict.fromkeys(k for coords, _ in points for k in coords)
              if k != hparam and len({str(c.get(k)) for c, _ in points}) > 1]
    fig, axes = plt.subplots(1, len(metric_names), figsize=(4.6 * len(metric_names), 3.9), squeeze=False,
                             layout="constrained")
    positive = all(isinstance(c.get(hparam), (int, float)) and c.get(hparam) > 0 for c, _ in points)
    log_x = hparam in LOG_AXIS_HPARAMS and positive
    values = sorted({float(c[hparam]) for c, _ in points if isinstance(c.get(hparam), (int, float))})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, name in zip(axes[0], metric_names):
        lines: dict[str, list] = {}
        for coords, stats in points:
            s = stats.get(name)
            if s and s.get("mean") is not None:
                label = ", ".join(f"{HPARAM_LABELS.get(k, k)}={_num(coords.get(k))}" for k in others)
                lines.setdefault(label, []).append((coords[hparam], s))
        for i, (label, pts) in enumerate(sorted(lines.items())):
            pts.sort(key=lambda p: p[0])
            xs = _dodge(np.array([p[0] for p in pts], float), i, len(lines), log_x, values)
            stats = [p[1] for p in pts]
            colour = colours[i % len(colours)]
            ax.errorbar(xs, [s["mean"] for s in stats], yerr=_error_bars(stats), color=colour, marker="o",
                        capsize=4, label=label or None, linewidth=1.6)
            hollow = [j for j, s in enumerate(stats) if s.get("interval") == "min-max"]
            if hollow and len(hollow) < len(stats):
                ax.scatter(xs[hollow], [stats[j]["mean"] for j in hollow], s=40, facecolor="white",
                           edgecolor=colour, zorder=3)
        if log_x:
            ax.set_xscale("log")
        ax.set_xticks(values, [_num(v) for v in values])
        ax.minorticks_off()
        bounds = bounds_of(name) if bounds_of else None
        if bounds:
            ax.set_ylim(bounds[0] - 0.03, bounds[1] + 0.03)
        ax.set_xlabel(HPARAM_LABELS.get(hparam, hparam) + (" (log scale)" if ax.get_xscale() == "log" else ""))
        ax.set_ylabel(f"{name} (mean over seeds)")
        ax.set_title(name)
        ax.grid(True, alpha=0.3)
        if len(lines) > 1:
            ax.legend(fontsize=8)
    heading = title or f"Held-out metrics against {HPARAM_LABELS.get(hparam, hparam)}"
    fig.suptitle(heading + f"\n{_interval_note(points)}", fontsize=11)
    return _save(fig, path)


def plot_point_comparison(labels, stats, metric: str, path, bounds=None, title=None):
    """Horizontal dot plot: one row per (run, sweep point) label, mean with its interval, best on top."""
    stats = list(stats)
    height = 1.2 + 0.38 * len(labels)
    fig, ax = plt.subplots(figsize=(8.5, height), layout="constrained")
    ys = np.arange(len(labels))[::-1]
    means = np.array([s["mean"] for s in stats], float)
    ax.errorbar(means, ys, xerr=_error_bars(stats), fmt="o", capsize=4, color="C0")
    hollow = [i for i, s in enumerate(stats) if s.get("interval") == "min-max"]
    if hollow:
        ax.scatter(means[hollow], ys[hollow], s=46, facecolor="white", edgecolor="C0", zorder=3)
    ax.scatter(means[:1], ys[:1], s=120, marker="*", color="C3", zorder=4, label="best")
    ax.set_yticks(ys, labels, fontsize=8)
    if bounds:
        ax.set_xlim(bounds[0] - 0.02, bounds[1] + 0.02)
    ax.set_xlabel(f"{metric} (mean over seeds)")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title((title or f"{metric}: runs compared") + f"\n{_interval_note([({}, {metric: s}) for s in stats])}",
                 fontsize=10)
    return _save(fig, path)


def _dodge(xs, i: int, lines: int, log_x: bool, values: list) -> np.ndarray:
    """Shifts line i of `lines` sideways (a few % of the tick spacing) so error bars do not overlap."""
    if lines < 2:
        return xs
    offset = (i - (lines - 1) / 2) / lines
    if log_x:
        span = np.log(values[-1] / values[0]) / max(len(values) - 1, 1) if len(values) > 1 else 0.5
        return xs * np.exp(0.25 * span * offset)
    span = (values[-1] - values[0]) / max(len(values) - 1, 1) if len(values) > 1 else 1.0
    return xs + 0.25 * span * offset


def _num(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


# ----------------------------------------------------------------------------- sweep curves over training

MAX_CURVE_POINTS = 8  # sweep points drawn as rows; more would be unreadable


def plot_sweep_curves(curves: dict, path):
    """Rows = sweep points (at most MAX_CURVE_POINTS), columns = metrics, each cell the mean over
    seeds with its 95% band (min–max under 3 seeds) against the training step. Every column shares
    its y axis, so the rows compare at a glance. curves: `report.sweep_curves`."""
    labels = list(curves)[:MAX_CURVE_POINTS]
    names, same_as = [], {}
    for name in dict.fromkeys(n for label in labels for n in curves[label]):
        twin = next((k for k in names if _same_curves(curves, labels, k, name)), None)
        same_as.setdefault(twin, []).append(name) if twin else names.append(name)  # e.g. exact match = n1
    fig, axes = plt.subplots(len(labels), len(names), figsize=(3.4 * len(names), 2.3 * len(labels) + 0.9),
                             squeeze=False, sharex=True, sharey="col", layout="constrained")
    for row, label in enumerate(labels):
        for col, name in enumerate(names):
            ax = axes[row, col]
            points = [(step, s) for step, s in curves[label].get(name, []) if s.get("mean") is not None]
            if points:
                steps = np.array([step for step, _ in points], float)
                ax.plot(steps, [s["mean"] for _, s in points], color=f"C{col % 10}", linewidth=1.6)
                ax.fill_between(steps, [s["lo"] for _, s in points], [s["hi"] for _, s in points],
                                color=f"C{col % 10}", alpha=0.2, linewidth=0)
            ax.grid(True, alpha=0.3)
            if row == 0:
                title = " = ".join([name, *same_as.get(name, [])])
                ax.set_title(("held-out " if name.startswith("test/") else "") + title, fontsize=9)
            if col == 0:
                ax.set_ylabel(label, fontsize=9)
            if row == len(labels) - 1:
                ax.set_xlabel("training step")
    seeds = sorted({s["n"] for label in labels for pts in curves[label].values() for _, s in pts if s.get("n")})
    more = f"; first {MAX_CURVE_POINTS} of {len(curves)} sweep points" if len(curves) > len(labels) else ""
    fig.suptitle(f"Over training, one row per sweep point: mean over seeds (n = {'/'.join(map(str, seeds))}), "
                 f"band = 95% t-interval (min–max under 3 seeds){more}", fontsize=10)
    return _save(fig, path)


def _same_curves(curves: dict, labels: list, a: str, b: str) -> bool:
    """Metrics a and b have the same means at every step of every sweep point."""
    def means(label, name):
        return [(step, s.get("mean")) for step, s in curves[label].get(name, [])]
    return all(means(label, a) == means(label, b) for label in labels)


# ----------------------------------------------------------------------------- geometry vs reasoning

def _interval_text(lo, hi) -> str:
    return "[–]" if lo is None or hi is None else f"[{lo:.2f}, {hi:.2f}]"


def plot_geometry_vs_reasoning(result: dict, path, max_cols: int = 4):
    """One panel per geometry scalar of `correlation.geometry_vs_reasoning`: each experiment's
    scalar (x) against its held-out first decision (y), titled with Spearman ρ [bootstrap 95% CI]
    and n."""
    entries = [e for e in result.get("across", []) if result.get("points", {}).get(e["scalar"])]
    cols = min(max_cols, max(len(entries), 1))
    rows = -(-max(len(entries), 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.3 * rows + 0.5), squeeze=False,
                             sharey=True, layout="constrained")
    target = result.get("target", "held-out accuracy")
    for ax, entry in zip(axes.flat, entries):
        xy_Nx2 = np.asarray(result["points"][entry["scalar"]], float)
        labels_N = np.asarray(result.get("labels", {}).get(entry["scalar"], [""] * len(xy_Nx2)))
        for colour, label in enumerate(dict.fromkeys(labels_N)):  # one colour per sweep point
            at_N = labels_N == label
            ax.scatter(xy_Nx2[at_N, 0], xy_Nx2[at_N, 1], s=22, alpha=0.75, color=f"C{colour % 10}",
                       edgecolor="none", label=label or None)
        rho = entry.get("rho")
        rho_text = "nan" if rho is None else f"{rho:+.2f}"
        lo, hi = entry["ci95"]
        excludes_zero = lo is not None and hi is not None and (lo > 0 or hi < 0)
        ax.set_title(f"{entry['scalar']}\nρ = {rho_text} {_interval_text(lo, hi)}, n = {entry['n']}",
                     fontsize=9, fontweight="bold" if excludes_zero else "normal")
        ax.set_xlabel(entry["scalar"], fontsize=8)
        ax.grid(True, alpha=0.3)
    for ax in axes.flat[len(entries):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"held-out {target}", fontsize=8)
    if result.get("labels") and entries:
        axes[0, 0].legend(fontsize=7, title="sweep point", title_fontsize=7)
    if names.metric_range(target) == names.UNIT:  # an accuracy: show its whole range
        axes[0, 0].set_ylim(-0.04, 1.04)
    fig.suptitle(f"Does geometry predict held-out accuracy? one dot per experiment\n"
                 f"Spearman ρ [paired bootstrap 95% CI] against {target}; bold: the CI excludes 0", fontsize=10)
    return _save(fig, path)


# ----------------------------------------------------------------------------- scale ladder

def plot_ladder(rungs: list[dict], axis: str, path, largest=None, works_mean: float = 0.5,
                over_chance: float = 10.0):
    """Held-out first decision and exact match (mean ± 95% CI over seeds) against the ladder's
    size axis, with chance (1/d), the "works" threshold max(works_mean, over_chance × chance),
    and the largest working rung marked. rungs: `ladder.rungs`."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    xs = np.array([r[axis] for r in rungs], float)
    curves = [(names.FIRST_TOKEN, "first decision", "C0"), (names.EXACT_MATCH, "exact match", "C1")]
    if _same_means(rungs, names.FIRST_TOKEN, names.EXACT_MATCH):  # hardest-token target: one line, not two
        curves = [(names.FIRST_TOKEN, "first decision = exact match (the target is n1 alone)", "C0")]
    for name, label, colour in curves:
        have = [i for i, r in enumerate(rungs) if r.get(name) and r[name].get("mean") is not None]
        if have:
            stats = [rungs[i][name] for i in have]
            ax.errorbar(xs[have], [s["mean"] for s in stats], yerr=_error_bars(stats), marker="o", capsize=4,
                        color=colour, label=label, linewidth=1.6)
    chance = np.array([r["chance"] for r in rungs])
    ax.plot(xs, chance, color="grey", linestyle=":", label="chance (1/d)")
    ax.plot(xs, np.maximum(works_mean, over_chance * chance), color="grey", linestyle="--", linewidth=1,
            label=f"works: ≥ {works_mean} and ≥ {over_chance:g}× chance")
    if largest is not None:
        ax.axvline(largest[axis], color="C2", alpha=0.3, linewidth=4, zorder=0,
                   label=f"largest working {axis} = {largest[axis]}")
    if axis == "degree":
        ax.set_xscale("log")
    ax.set_xticks(xs, [_num(int(x)) for x in xs])
    ax.minorticks_off()
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel({"degree": "degree d (arms; log scale)", "path_length": "path length ℓ"}[axis])
    ax.set_ylabel("held-out accuracy (mean over seeds)")
    n = sorted({r["n"] for r in rungs})
    ax.set_title(f"Scale ladder: in-weights path-finding vs {axis} ({'/'.join(map(str, n))} seeds per rung)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _same_means(rungs: list[dict], a: str, b: str) -> bool:
    """Every rung has both metrics and equal means (then the two curves would hide each other)."""
    pairs = [((r.get(a) or {}).get("mean"), (r.get(b) or {}).get("mean")) for r in rungs]
    return bool(pairs) and all(x is not None and y is not None and abs(x - y) < 1e-9 for x, y in pairs)
