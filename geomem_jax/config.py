"""Experiment configs: the base ConfigDict, loading `file.py[:preset]`, `--config.key=value` overrides.

Every config file under `configs/` defines `get_config(arg)`; `arg` is the preset
after the colon. Configs are locked: an unknown key is an error that names the key
and lists the keys of its section.
"""

from __future__ import annotations

import ast
import importlib.util
import math
import pathlib

import ml_collections

from geomem_jax.errors import ConfigError, UserError

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def base_config() -> ml_collections.ConfigDict:
    """Defaults shared by every experiment; config files override what they need."""
    c = ml_collections.ConfigDict()
    c.name = "run"

    c.graph = dict(
        family="path_star", degree=10, path_length=5, branching=2, rows=4, cols=4,
        num_nodes=15, seed=0, edges="both", self_edges=False, train_fraction=0.75,
        holdout="leaf", release_dir="",
    )
    c.task = dict(
        mode="in_weights", pause_tokens=1, target="full_path", task_tokens=True,
        reverse_path=False, teacherless=False, root_in_prefix=False, pause_in_edges=False,
        num_values=0,
    )
    c.model = dict(
        family="transformer", layers=2, width=128, heads=4, attention=True, residual=True,
        layernorm=True, positions=True, tied=True, freeze_embeddings=False, mlp_only=False,
        init="default", init_scale=0.0, position_std=1.0, dropout=0.0, d_state=16, d_conv=4, expand=2,
        dtype="float32", node2vec_objective="full_softmax", walk_length=10, walks_per_node=4,
        window=3, negatives=5, walk_p=1.0, walk_q=1.0,
    )
    c.train = dict(recipe="mixed", steps=1000, batch_size=256, full_batch=False, stage1_steps=0, stage1_lr=1e-2)
    c.opt = dict(
        lr=1e-3, weight_decay=0.01, warmup_steps=100, schedule="cosine", final_lr_fraction=0.1,
        b1=0.9, b2=0.999, eps=1e-8,
    )
    c.eval = dict(every=250, node_chunk=512, row_chunk=1024)
    c.ckpt = dict(every=0, max_to_keep=2)
    c.mesh = dict(devices="1")
    c.logging = dict(tensorboard=False, wandb=False, wandb_project="geomem_jax", wandb_mode="offline")
    c.sweep = dict(seeds=(0,), graphs=(), lr=(), weight_decay=(), init_scale=(), dropout=(), mode="product")
    return c


def load_config(spec: str) -> ml_collections.ConfigDict:
    """Loads `path/to/file.py[:preset]` and calls its get_config(preset)."""
    path_str, _, preset = spec.partition(":")
    path = _resolve(path_str)
    module_spec = importlib.util.spec_from_file_location(f"geomem_config_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as err:
        raise UserError(f"--config={spec}: the config file failed to load ({type(err).__name__}: {err})") from None
    if not hasattr(module, "get_config"):
        raise UserError(f"--config={spec}: {path} has no get_config(arg) function")
    presets = getattr(module, "PRESETS", None)
    if presets is not None and preset and preset not in presets:
        raise ConfigError("--config preset", preset, f"one of {', '.join(presets)} (from {path.name})")
    cfg = module.get_config(preset or None)
    cfg.lock()
    return cfg


def _resolve(path_str: str) -> pathlib.Path:
    for candidate in (pathlib.Path(path_str), REPO_ROOT / path_str):
        if candidate.is_file():
            return candidate
    raise UserError(f"--config={path_str}: no such config file")


def parse_value(text: str):
    """'1e-3' -> 0.001, 'true' -> True, '(0,1)' / '0,1' -> (0, 1), anything else stays a str."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    if isinstance(value, list):
        value = tuple(value)
    return value


def apply_override(cfg: ml_collections.ConfigDict, dotted: str, text: str) -> None:
    """Sets cfg.<dotted> from a command-line string, keeping the field's type."""
    *parents, leaf = dotted.split(".")
    node = cfg
    for i, part in enumerate(parents):
        if part not in node:
            raise _unknown_key(".".join(parents[: i + 1]), node)
        node = node[part]
    if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
        raise _unknown_key(dotted, node if isinstance(node, ml_collections.ConfigDict) else None)
    value = parse_value(text)
    current = node[leaf]
    if isinstance(current, tuple) and not isinstance(value, tuple):
        value = (value,)
    if isinstance(current, bool) and not isinstance(value, bool):
        raise ConfigError(f"config.{dotted}", text, "true or false")
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(current, str) and not isinstance(value, str):
        value = str(text)
    try:
        with node.unlocked():
            node[leaf] = value
    except (TypeError, ValueError):
        raise ConfigError(f"config.{dotted}", text, f"a value of type {type(current).__name__}") from None


def _unknown_key(dotted: str, section) -> ConfigError:
    allowed = ", ".join(sorted(section.keys())) if section is not None else "(not a section)"
    return ConfigError("config." + dotted, "<unknown key>", f"a key among: {allowed}")


def to_dict(cfg) -> dict:
    return cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)


# ----------------------------------------------------------------------------- validation

RECIPES = ("mixed", "staged", "edges")
SCHEDULES = ("cosine", "constant")
MODEL_FAMILIES = ("transformer", "mamba", "node2vec")
TASK_MODES = ("in_weights", "in_context")


def check_config(cfg) -> None:
    """Ranges and combinations that can be checked before any compute."""
    if cfg.train.recipe not in RECIPES:
        raise ConfigError("train.recipe", cfg.train.recipe, f"one of {', '.join(RECIPES)}")
    if cfg.opt.schedule not in SCHEDULES:
        raise ConfigError("opt.schedule", cfg.opt.schedule, f"one of {', '.join(SCHEDULES)}")
    if cfg.model.family not in MODEL_FAMILIES:
        raise ConfigError("model.family", cfg.model.family, f"one of {', '.join(MODEL_FAMILIES)}")
    positive = {
        "train.steps": cfg.train.steps, "train.batch_size": cfg.train.batch_size,
        "eval.every": cfg.eval.every, "model.layers": cfg.model.layers, "model.width": cfg.model.width,
        "model.heads": cfg.model.heads, "eval.node_chunk": cfg.eval.node_chunk, "eval.row_chunk": cfg.eval.row_chunk,
    }
    for field, value in positive.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(field, value, "an integer > 0")
    for field, value in {"opt.warmup_steps": cfg.opt.warmup_steps, "ckpt.every": cfg.ckpt.every}.items():
        if not isinstance(value, int) or value < 0:
            raise ConfigError(field, value, "an integer >= 0")
    if cfg.model.family == "transformer" and cfg.model.width % cfg.model.heads:
        raise ConfigError("model.heads", cfg.model.heads, f"a divisor of model.width={cfg.model.width}")
    if not (isinstance(cfg.model.position_std, (int, float)) and math.isfinite(cfg.model.position_std)
            and cfg.model.position_std > 0):
        raise ConfigError("model.position_std", cfg.model.position_std, "a finite number > 0 (release: 1.0)")
    if not 0 < cfg.opt.final_lr_fraction <= 1:
        raise ConfigError("opt.final_lr_fraction", cfg.opt.final_lr_fraction, "in (0, 1]")
    if cfg.train.recipe == "staged" and not 0 < cfg.train.stage1_steps < cfg.train.steps:
        raise ConfigError("train.stage1_steps", cfg.train.stage1_steps, f"in (0, train.steps={cfg.train.steps})")
    if cfg.task.reverse_path and cfg.task.target == "hardest_token":
        raise ConfigError("task.reverse_path", True, "false when task.target=hardest_token (no reversed hardest token)")
    if cfg.task.mode not in TASK_MODES:
        raise ConfigError("task.mode", cfg.task.mode, f"one of {', '.join(TASK_MODES)}")
    if cfg.task.pause_tokens < 0:
        raise ConfigError("task.pause_tokens", cfg.task.pause_tokens, "an integer >= 0")
    if not (math.isfinite(cfg.opt.lr) and cfg.opt.lr > 0):
        raise ConfigError("opt.lr", cfg.opt.lr, "a finite number > 0")
    for field in ("b1", "b2"):
        if not 0 <= cfg.opt[field] < 1:
            raise ConfigError(f"opt.{field}", cfg.opt[field], "a number in [0, 1)")
    if not cfg.opt.eps > 0:
        raise ConfigError("opt.eps", cfg.opt.eps, "a number > 0")
    if not isinstance(cfg.ckpt.max_to_keep, int) or cfg.ckpt.max_to_keep < 1:
        raise ConfigError("ckpt.max_to_keep", cfg.ckpt.max_to_keep, "an integer >= 1")
    from geomem_jax import distributed

    distributed.num_devices(cfg.mesh.devices)  # more devices than present: refuse before any work
    from geomem_jax import writers

    logging_opts = writers.settings(cfg.logging)  # a missing tensorboardX / wandb: refuse up front too
    if logging_opts["tensorboard"]:
        writers.summary_writer_class()
    if logging_opts["wandb"]:
        writers.import_wandb()
