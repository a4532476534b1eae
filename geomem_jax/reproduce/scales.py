"""Sizes and runs of `geomem reproduce`: `Scale` (every claim's sizes), `SCALES`, `RunSpec` (one training
run: a config preset plus overrides, built by the normal config system) and the configs saved in run
directories."""

from __future__ import annotations

import dataclasses
import json
import pathlib

from geomem_jax import config as config_lib, rundir


@dataclasses.dataclass(frozen=True)
class Scale:
    """Sizes of every claim. `base` is the in-weights hardest-token run the claims share."""

    name: str
    seeds: int
    base: tuple  # (config spec, ((dotted, text), ...))
    full_path: tuple  # (config spec, overrides): the claim-1 Transformer, the full-path recipe
    mamba: tuple  # extra overrides on `full_path`: the claim-1 Mamba
    in_context: tuple  # (config spec, overrides)
    zoo_graphs: tuple
    zoo_models: tuple
    knobs: tuple  # (config spec, overrides)
    pauses: tuple
    pause_every: int  # eval.every of the pause runs (the resolution of "steps to target")
    long_paths: tuple  # ((d, l), ...): the opt-in pause_tokens_long claim, one padded program per p
    long_pauses: tuple
    long_overrides: tuple  # extra overrides on `base` for the long-path pause runs (steps, eval.every)
    ladders: tuple  # ((name, config spec), ...): configs/scaling.py ladders of the scale_ladder claim
    ladder_seeds: int  # seeds per ladder run unless --seeds is given
    # The runs on 15-node graphs (the zoo, precision) train this many times the seeds: seconds per
    # seed, and final margins chaotic enough in the seed that 8 leave rows open (docs/REPRODUCING.md).
    more_seeds: int = 1
    # The knobs train this many times the seeds instead: sized from their 24-seed run (docs/REPRODUCING.md).
    knob_more_seeds: int = 1


_QS = "configs/quickstart.py"
SCALES = {
    # The CPU reproduction: quickstart G(100, 5) (1 layer, width 64, 3000 steps), < 2 h on 2 cores.
    "full": Scale(
        name="full", seeds=8,
        # quickstart: 2400 steps, stratified; docs/REPRODUCTION.md was measured with uniform draws
        base=(_QS, (("train.steps", "3000"), ("train.mixing", "uniform"), ("eval.every", "100"),
                    ("ckpt.every", "1000"))),
        # docs/FULL_PATH.md: the full-path recipe (1 × 64, lr 2e-2, weight decay 0.3, stratified); Mamba
        # on it as configs/pathstar.py:mamba_cpu (2 layers, d_state 4, lr 1e-2, weight decay 0.03, 4000 steps)
        full_path=("configs/pathstar.py:cpu", ()),
        mamba=(("model.family", "mamba"), ("model.layers", "2"), ("model.d_state", "4"), ("opt.lr", "1e-2"),
               ("opt.weight_decay", "0.03"), ("train.steps", "4000")),
        # configs/in_context.py:cpu: G(2, 5), 2 layers × 64, positions N(0, 0.02²), 2000 steps.
        in_context=("configs/in_context.py:cpu", ()),
        zoo_graphs=("star", "grid", "cycle", "irregular"),
        zoo_models=("transformer", "neural_net", "associative", "node2vec"),
        knobs=("configs/knobs.py:paper", (("ckpt.every", "10000"),)),
        pauses=(0, 1, 2, 4), pause_every=100,
        long_paths=((100, 8), (100, 10)), long_pauses=(0, 1, 2, 4, 8),
        long_overrides=(("train.steps", "4000"), ("eval.every", "200"), ("ckpt.every", "1000")),
        ladders=(("degree", "configs/scaling.py:degree"), ("length", "configs/scaling.py:length")), ladder_seeds=4,
        more_seeds=3, knob_more_seeds=5,
    ),
    # CI: a few minutes; verdicts are computed but sizes are too small to decide.
    "quick": Scale(
        name="quick", seeds=2,
        # G(40, 4): the smallest star whose 10 held-out leaves still give a readable accuracy;
        # the quickstart model reaches ~0.6-0.9 first decision there in 1000 steps (seconds of compute).
        base=(_QS, (
            ("graph.degree", "40"), ("graph.path_length", "4"),
            ("train.steps", "1000"), ("train.batch_size", "64"), ("opt.warmup_steps", "20"),
            ("eval.every", "100"), ("ckpt.every", "1000"),
        )),
        full_path=(_QS, (("graph.degree", "40"), ("graph.path_length", "4"), ("task.target", "full_path"),
                         ("train.steps", "1000"), ("train.batch_size", "64"), ("opt.warmup_steps", "20"),
                         ("eval.every", "100"), ("ckpt.every", "1000"))),
        mamba=(("model.family", "mamba"), ("model.width", "32"), ("train.steps", "200"), ("eval.every", "100"),
               ("ckpt.every", "200")),
        in_context=("configs/in_context.py:cpu", (
            ("model.width", "32"), ("train.steps", "200"), ("train.batch_size", "32"), ("opt.warmup_steps", "20"),
            ("eval.every", "100"), ("ckpt.every", "200"),
        )),
        zoo_graphs=("star", "grid"), zoo_models=("neural_net", "associative"),
        knobs=("configs/knobs.py:paper", (("model.width", "32"), ("train.steps", "200"), ("eval.every", "100"),
                                          ("ckpt.every", "200"))),
        pauses=(0, 1, 2, 4), pause_every=100,
        long_paths=((20, 6),), long_pauses=(0, 2),
        long_overrides=(("train.steps", "300"), ("eval.every", "100"), ("ckpt.every", "300")),
        ladders=(("smoke", "configs/scaling.py:smoke"),), ladder_seeds=2,
    ),
    # The paper's sizes (accelerators; not run on the CPU): G(5000, 5) GPT-mid, release zoo, knobs.
    "paper": Scale(
        name="paper", seeds=8,
        base=("configs/pathstar.py:g5000_l5", (("task.target", "hardest_token"),)),
        full_path=("configs/pathstar.py:g5000_l5", (("task.target", "full_path"),)),
        mamba=(("model.family", "mamba"),),
        in_context=("configs/in_context.py:g2_l5", ()),
        zoo_graphs=("star", "grid", "cycle", "irregular"),
        zoo_models=("transformer", "neural_net", "associative", "node2vec"),
        knobs=("configs/knobs.py:paper", ()),
        pauses=(0, 1, 5, 10), pause_every=1000,
        long_paths=((1000, 8), (1000, 10)), long_pauses=(0, 1, 2, 4, 8), long_overrides=(("eval.every", "1000"),),
        ladders=(("paper_degree", "configs/scaling.py:paper_degree"),
                 ("paper_length", "configs/scaling.py:paper_length")),
        ladder_seeds=4,
    ),
}


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One training run: `workdir/<key>` trained from `config` + `overrides` over `seeds` seeds."""

    key: str
    config: str
    overrides: tuple
    seeds: int
    analyze: bool = True

    def build(self):
        cfg = config_lib.load_config(self.config)
        for dotted, text in self._overrides():
            config_lib.apply_override(cfg, dotted, text)
        return cfg

    def _overrides(self) -> tuple:
        return (*self.overrides, ("sweep.seeds", str(tuple(range(self.seeds)))))

    def command(self, workdir) -> str:
        """The equivalent `geomem train` command line."""
        merged = dict(self._overrides())  # a later override of the same key wins, as in build()
        flags = " ".join(f"--config.{k}={_shell(v)}" for k, v in merged.items())
        return f"geomem train --config={self.config} {flags} --workdir={pathlib.Path(workdir) / self.key}"


def _shell(text: str) -> str:
    return f'"{text}"' if any(c in text for c in " (),") else text


def base_run(scale: Scale, seeds: int, **extra) -> RunSpec:
    """The shared in-weights hardest-token run, or a variant of it (extra overrides, own key)."""
    key = extra.pop("key", "hardest_token/transformer")
    more = tuple(extra.pop("overrides", ()))
    spec, overrides = scale.base
    return RunSpec(key, spec, (*overrides, *more), seeds)


# --------------------------------------------------------------------------- configs saved in run directories

def _config_dict(cfg) -> dict:
    return json.loads(json.dumps(config_lib.to_dict(cfg)))


def _saved_config(run_dir: pathlib.Path):
    return rundir.read_json(run_dir / rundir.CONFIG, missing=None)


def _saved_seeds(run_dir: pathlib.Path):
    saved = _saved_config(run_dir)
    return tuple(saved["sweep"]["seeds"]) if saved else None
