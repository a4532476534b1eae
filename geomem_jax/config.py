"""Experiment configs: the base ConfigDict, loading `file.py[:preset]`, `--config.key=value` overrides.

Every config file under `configs/` defines `get_config(arg)`; `arg` is the preset
after the colon. Configs are locked: an unknown key is an error that names the key
and lists the keys of its section. `base_config()` (every key, its default, meaning and
allowed values) lives in `config_base` and is re-exported here.

Validation, all before any compute (`train.build` calls `check_config` first; every error is a
ConfigError naming the field, the value and what is allowed):
  load_config / apply_override   an unknown key or preset; an override of the wrong type
  check_config                   everything below, then each key's range and the combinations
    check_value_types            every key holds its default's type (no None/NaN/inf, ints fit int32)
    check_sweep_values           sweep.* tuples: seeds, hyperparameter axes, graph overrides
    check_unbounded_sizes        keys that would allocate before the memory estimate
    check_family_keys            keys read by one family or recipe only, checked for every run
    check_node2vec_keys          sequence-model keys Node2Vec would ignore: only their neutral value
    check_release_dirs           graph.release_dir names an existing directory
Checks that need the built graph or task stay where that is built, still before compute: the graph
generators (graph.*: sizes, split, release files), tasks (task.* against the graph's paths, the
in-context sizes), train.build (a recipe with paths on a graph without any), sweep.experiments
(duplicate seeds, zip lengths), distributed (mesh.devices against the devices present),
memory.check_memory (the footprint), and the models' constructors (as a library API).
"""

from __future__ import annotations

import ast
import importlib.util
import math
import pathlib

import ml_collections

from geomem_jax.config_base import base_config  # re-exported: config files import it from here
from geomem_jax.errors import ConfigError, UserError, did_you_mean

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# A non-editable install puts the top-level configs/ here (pyproject.toml maps it to geomem_jax.configs).
PACKAGED_CONFIGS = pathlib.Path(__file__).resolve().parent / "configs"


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
        raise ConfigError("--config preset", preset,
                          f"one of {', '.join(presets)} (from {path.name}){did_you_mean(preset, presets)}")
    cfg = module.get_config(preset or None)
    cfg.lock()
    return cfg


def _candidates(path_str: str) -> list[pathlib.Path]:
    """The path as given (the user's own copy wins), then configs/... inside the installed package,
    then relative to a source checkout (editable installs, running from the repository)."""
    path = pathlib.Path(path_str)
    candidates = [path]
    if not path.is_absolute():
        if path.parts[:1] == ("configs",) and PACKAGED_CONFIGS.is_dir():
            candidates.append(PACKAGED_CONFIGS.joinpath(*path.parts[1:]))
        candidates.append(REPO_ROOT / path)
    return candidates


def _resolve(path_str: str) -> pathlib.Path:
    candidates = _candidates(path_str)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    folder = next((c for c in candidates if c.is_dir()), None)
    if folder is not None:
        files = ", ".join(sorted(p.name for p in folder.glob("*.py") if not p.name.startswith("_"))) or "none"
        raise UserError(f"--config={path_str}: is a folder, not a config file; pass --config="
                        f"{path_str.rstrip('/')}/FILE.py[:PRESET] (config files there: {files})")
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
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):  # not a literal, or too deep
        return text
    if isinstance(value, list):
        value = tuple(value)
    return value


def apply_override(cfg: ml_collections.ConfigDict, dotted: str, text: str) -> None:
    """Sets cfg.<dotted> from a command-line string, keeping the field's type."""
    *parents, leaf = dotted.split(".")
    node = cfg
    for i, part in enumerate(parents):
        if not isinstance(node, ml_collections.ConfigDict):  # a value, not a section (graph.degree.x)
            raise _unknown_key(".".join(parents[: i + 1]), None)
        if part not in node:
            raise _unknown_key(".".join(parents[: i + 1]), node)
        node = node[part]
    if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
        raise _unknown_key(dotted, node if isinstance(node, ml_collections.ConfigDict) else None)
    value = parse_value(text)
    current = node[leaf]
    if isinstance(current, ml_collections.ConfigDict):
        first_key = next(iter(current.keys()), "KEY")
        raise ConfigError(f"config.{dotted}", text, f"a key of the section, e.g. --config.{dotted}.{first_key}=VALUE")
    if isinstance(current, tuple) and not isinstance(value, tuple):
        value = (value,)
    if isinstance(current, bool) and not isinstance(value, bool):
        raise ConfigError(f"config.{dotted}", text, "true or false")
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > FLOAT32_MAX:  # also beyond float64: float(10**400) overflows
            raise ConfigError(f"config.{dotted}", text, f"a finite number of magnitude <= {FLOAT32_MAX:.4g}")
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
    parent, _, leaf = dotted.rpartition(".")
    prefix = f"config.{parent}." if parent else "config."
    hint = did_you_mean(leaf, section.keys(), prefix) if section is not None else ""
    return ConfigError("config." + dotted, "<unknown key>", f"a key among: {allowed}{hint}")


def to_dict(cfg) -> dict:
    return cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)


# ----------------------------------------------------------------------------- validation

RECIPES = ("mixed", "staged", "edges")
SCHEDULES = ("cosine", "constant")
MODEL_FAMILIES = ("transformer", "mamba", "node2vec")
TASK_MODES = ("in_weights", "in_context")
BATCH_LAYOUTS = ("by_kind", "padded")  # per-kind sub-batches, logits at loss positions | the release's layout
MIXINGS = ("uniform", "stratified")  # mixed recipe: uniform draws from edges ∪ paths | fixed proportions
DTYPES = ("float32", "bfloat16")  # model.dtype: the compute dtype of both sequence models


def check_config(cfg) -> None:
    """Ranges and combinations that can be checked before any compute."""
    check_value_types(cfg)
    check_sweep_values(cfg)
    check_unbounded_sizes(cfg)
    check_family_keys(cfg)
    check_node2vec_keys(cfg)
    check_release_dirs(cfg)
    if cfg.train.recipe not in RECIPES:
        raise ConfigError("train.recipe", cfg.train.recipe, f"one of {', '.join(RECIPES)}")
    sequence_model = cfg.model.family != "node2vec" and cfg.task.mode == "in_weights"
    if sequence_model and cfg.train.recipe == "mixed" and not cfg.train.full_batch and cfg.train.batch_size == 1:
        raise ConfigError("train.batch_size", 1, "an integer >= 2 (train.recipe=mixed draws rows of both kinds)")
    if cfg.train.batch_layout not in BATCH_LAYOUTS:
        raise ConfigError("train.batch_layout", cfg.train.batch_layout, f"one of {', '.join(BATCH_LAYOUTS)}")
    if cfg.train.mixing not in MIXINGS:
        raise ConfigError("train.mixing", cfg.train.mixing, f"one of {', '.join(MIXINGS)}")
    if cfg.opt.schedule not in SCHEDULES:
        raise ConfigError("opt.schedule", cfg.opt.schedule, f"one of {', '.join(SCHEDULES)}")
    if cfg.model.family not in MODEL_FAMILIES:
        raise ConfigError("model.family", cfg.model.family, f"one of {', '.join(MODEL_FAMILIES)}")
    if cfg.model.dtype not in DTYPES:
        raise ConfigError("model.dtype", cfg.model.dtype, f"one of {', '.join(DTYPES)}")
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

    if cfg.sweep.vmap_group < 0:
        raise ConfigError("sweep.vmap_group", cfg.sweep.vmap_group, "a whole number >= 0 (0: auto)")
    if distributed.num_devices(cfg.mesh.devices) > 1 and cfg.sweep.vmap_group:  # more devices than present: refused
        raise ConfigError("sweep.vmap_group", cfg.sweep.vmap_group,
                          "0 (auto) on a mesh of several devices: the mesh splits the sweep instead")
    from geomem_jax import writers

    logging_opts = writers.settings(cfg.logging)  # a missing tensorboardX / wandb: refuse up front too
    if logging_opts["tensorboard"]:
        writers.summary_writer_class()
    if logging_opts["wandb"]:
        writers.import_wandb()


# ----------------------------------------------------------------------------- value types and ranges

INT32 = (-(2**31), 2**31 - 1)  # every whole number ends up in an int32 array or a shape
FLOAT32_MAX = 3.4028234663852886e38
MAX_PAUSE_TOKENS = 1024  # p pause tokens make every sequence p longer
SWEEP_AXIS_BOUNDS = {  # sweep axis: (the config key that is its default, allowed?, wording)
    "lr": ("opt.lr", lambda v: v > 0, "> 0"),
    "weight_decay": ("opt.weight_decay", lambda v: v >= 0, ">= 0"),
    "init_scale": ("model.init_scale", lambda v: v >= 0, ">= 0 (0: the model.init default)"),
    "dropout": ("model.dropout", lambda v: 0 <= v < 1, "in [0, 1)"),
}


def _leaves(section, prefix=""):
    for key, value in section.items():
        if isinstance(value, ml_collections.ConfigDict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _get(cfg, dotted: str):
    for part in dotted.split("."):
        cfg = cfg[part]
    return cfg


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_finite32(value) -> bool:
    """A real number that stays finite in float32 (hyperparameters are float32 arrays)."""
    return _is_number(value) and abs(value) <= FLOAT32_MAX  # False for NaN too; exact for huge ints


def _check_scalar(field: str, value, default) -> None:
    """`value` has the type of the key's default; whole numbers fit int32, reals are finite."""
    if isinstance(default, bool):
        ok, wanted = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok = _is_number(value) and isinstance(value, int) and INT32[0] <= value <= INT32[1]
        wanted = f"a whole number in [{INT32[0]}, {INT32[1]}]"
    elif isinstance(default, float):
        ok, wanted = _is_finite32(value), f"a finite number of magnitude <= {FLOAT32_MAX:.4g}"
    elif isinstance(default, str):
        ok, wanted = isinstance(value, str), "a string"
    else:
        return  # tuples: check_sweep_values
    if not ok:
        raise ConfigError(field, value, wanted)


def check_value_types(cfg) -> None:
    """Every key of base_config holds a value of its default's type (never None, NaN, inf or an
    int beyond int32); each key's own range is checked where it is used."""
    for field, default in _leaves(base_config()):
        _check_scalar(field, _get(cfg, field), default)
    for field, ok, allowed in SWEEP_AXIS_BOUNDS.values():
        if not ok(_get(cfg, field)):
            raise ConfigError(field, _get(cfg, field), allowed)


def check_sweep_values(cfg) -> None:
    """The sweep tuples: seeds, hyperparameter axes, graph overrides."""
    from geomem_jax import sweep

    seeds = cfg.sweep.seeds
    if not (isinstance(seeds, tuple) and seeds and all(_is_number(s) and isinstance(s, int) and 0 <= s <= INT32[1]
                                                       for s in seeds)):
        raise ConfigError("sweep.seeds", seeds, f"a non-empty tuple of whole numbers in [0, {INT32[1]}]")
    for name, (_, ok, allowed) in SWEEP_AXIS_BOUNDS.items():
        values = cfg.sweep[name]
        if not (isinstance(values, tuple) and all(_is_finite32(v) and ok(v) for v in values)):
            raise ConfigError(f"sweep.{name}", values, f"a tuple of finite (float32) numbers {allowed}")
    graphs = cfg.sweep.graphs
    if not (isinstance(graphs, tuple) and all(isinstance(g, dict) for g in graphs)):
        raise ConfigError("sweep.graphs", graphs, "a tuple of dicts of graph.* overrides, e.g. ({'degree': 5},)")
    for i, override in enumerate(graphs):
        for key, value in override.items():
            if key not in sweep.GRAPH_KEYS:
                raise ConfigError(f"sweep.graphs[{i}]", key, f"keys among {', '.join(sweep.GRAPH_KEYS)}")
            _check_scalar(f"sweep.graphs[{i}].{key}", value, cfg.graph[key])


def check_unbounded_sizes(cfg) -> None:
    """Keys without a natural upper bound that would allocate before the memory estimate does."""
    if not 0 <= cfg.task.pause_tokens <= MAX_PAUSE_TOKENS:
        raise ConfigError("task.pause_tokens", cfg.task.pause_tokens, f"an integer in [0, {MAX_PAUSE_TOKENS}]")
    from geomem_jax import graphs

    if not 0 <= cfg.task.num_values <= graphs.MAX_NODES:  # node labels: a vocabulary of that size
        raise ConfigError("task.num_values", cfg.task.num_values, f"an integer in [0, {graphs.MAX_NODES}] (0: 2N)")


def check_family_keys(cfg) -> None:
    """Keys read only by some model families or recipes, checked for all (a bad value never waits
    for a family switch)."""
    for field in ("model.walk_p", "model.walk_q", "train.stage1_lr"):
        if not _get(cfg, field) > 0:
            raise ConfigError(field, _get(cfg, field), "a finite number > 0")
    for field in ("model.d_state", "model.d_conv", "model.expand", "model.walk_length", "model.walks_per_node",
                  "model.window", "model.negatives"):
        if not _get(cfg, field) >= 1:
            raise ConfigError(field, _get(cfg, field), "an integer >= 1")
    if not cfg.train.stage1_steps >= 0:
        raise ConfigError("train.stage1_steps", cfg.train.stage1_steps, "an integer >= 0")


# Keys of the sequence models that Node2Vec does not read (its lr is constant, it has no dropout,
# runs in float32, and its sgns Adam keeps optax's defaults, the base values of opt.b1/b2/eps):
# only their neutral value is accepted, so that none is silently ignored.
NODE2VEC_NEUTRAL = {"opt.schedule": "constant", "opt.warmup_steps": 0, "model.dropout": 0.0, "model.dtype": "float32",
                    "opt.b1": 0.9, "opt.b2": 0.999, "opt.eps": 1e-8}


def check_node2vec_keys(cfg) -> None:
    if cfg.model.family != "node2vec":
        return
    for field, neutral in NODE2VEC_NEUTRAL.items():
        if _get(cfg, field) != neutral:
            raise ConfigError(field, _get(cfg, field),
                              f"{neutral!r} with model.family=node2vec (Node2Vec does not use it)")
    if any(rate != 0 for rate in cfg.sweep.dropout):
        raise ConfigError("sweep.dropout", cfg.sweep.dropout, "() with model.family=node2vec (Node2Vec has no dropout)")


def check_release_dirs(cfg) -> None:
    """graph.release_dir (and any in sweep.graphs) names an existing directory, or is empty."""
    dirs = [("graph.release_dir", cfg.graph.release_dir)]
    dirs += [(f"sweep.graphs[{i}].release_dir", g["release_dir"]) for i, g in enumerate(cfg.sweep.graphs)
             if "release_dir" in g]
    for field, path in dirs:
        if path and not _is_dir(path):
            raise ConfigError(field, path,
                              "a directory of release-format files (it does not exist or is not a directory)")


def _is_dir(path: str) -> bool:
    try:
        return pathlib.Path(path).is_dir()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        return False
