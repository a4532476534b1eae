"""The base config (no training): every key commented where it is defined, defaults pinned,
config.base_config re-exported, importable without jax, and the model.dtype rules."""

import ast
import io
import pathlib
import subprocess
import sys
import tokenize

import pytest

from geomem_jax import config as config_lib, config_base
from geomem_jax.errors import ConfigError

SOURCE = pathlib.Path(config_base.__file__)


def _leaf_keys(section, prefix=""):
    for key, value in section.items():
        if hasattr(value, "items"):
            yield from _leaf_keys(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def _defined_keys() -> dict:
    """{dotted key: source line} of every `c.KEY = value` and `c.SECTION = dict(KEY=value, ...)`."""
    fn = next(n for n in ast.parse(SOURCE.read_text()).body
              if isinstance(n, ast.FunctionDef) and n.name == "base_config")
    keys = {}
    for node in ast.walk(fn):
        if not (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Attribute)):
            continue
        name = node.targets[0].attr
        if isinstance(node.value, ast.Call) and getattr(node.value.func, "id", None) == "dict":
            keys.update({f"{name}.{kw.arg}": kw.lineno for kw in node.value.keywords})
        else:
            keys[name] = node.lineno
    return keys


def _commented_lines() -> set:
    tokens = tokenize.generate_tokens(io.StringIO(SOURCE.read_text()).readline)
    return {tok.start[0] for tok in tokens if tok.type == tokenize.COMMENT}


def test_every_key_is_defined_on_its_own_commented_line():
    defined = _defined_keys()
    assert sorted(defined) == sorted(_leaf_keys(config_lib.base_config()))
    lines = list(defined.values())
    assert len(set(lines)) == len(lines), "one key per line, so each comment describes one key"
    uncommented = sorted(k for k, line in defined.items() if line not in _commented_lines())
    assert not uncommented, f"keys without a comment on their line: {uncommented}"


def test_defaults_unchanged():
    cfg = config_lib.to_dict(config_lib.base_config())
    assert cfg["name"] == "run"
    assert cfg["graph"] == dict(family="path_star", degree=10, path_length=5, branching=2, rows=4, cols=4,
                                num_nodes=15, seed=0, edges="both", self_edges=False, train_fraction=0.75,
                                holdout="leaf", release_dir="")
    assert cfg["task"] == dict(mode="in_weights", pause_tokens=1, target="full_path", task_tokens=True,
                               reverse_path=False, teacherless=False, root_in_prefix=False, pause_in_edges=False,
                               num_values=0)
    assert cfg["model"] == dict(
        family="transformer", layers=2, width=128, heads=4, attention=True, residual=True, layernorm=True,
        positions=True, tied=True, freeze_embeddings=False, mlp_only=False, init="default", init_scale=0.0,
        position_std=1.0, dropout=0.0, d_state=16, d_conv=4, expand=2, dtype="float32",
        node2vec_objective="full_softmax", walk_length=10, walks_per_node=4, window=3, negatives=5, walk_p=1.0,
        walk_q=1.0)
    assert cfg["train"] == dict(recipe="mixed", steps=1000, batch_size=256, full_batch=False, stage1_steps=0,
                                stage1_lr=1e-2, batch_layout="by_kind", mixing="uniform")
    assert cfg["opt"] == dict(lr=1e-3, weight_decay=0.01, warmup_steps=100, schedule="cosine",
                              final_lr_fraction=0.1, b1=0.9, b2=0.999, eps=1e-8)
    assert cfg["eval"] == dict(every=250, node_chunk=512, row_chunk=1024)
    assert cfg["ckpt"] == dict(every=0, max_to_keep=2)
    assert cfg["mesh"] == dict(devices="1")
    assert cfg["logging"] == dict(tensorboard=False, wandb=False, wandb_project="geomem_jax", wandb_mode="offline")
    assert cfg["sweep"] == dict(seeds=(0,), graphs=(), lr=(), weight_decay=(), init_scale=(), dropout=(),
                                mode="product", vmap_group=0)
    # types matter too: overrides keep the default's type
    assert isinstance(cfg["sweep"]["seeds"], tuple) and isinstance(cfg["opt"]["lr"], float)


def test_base_config_is_reexported_and_needs_no_jax():
    assert config_lib.base_config is config_base.base_config
    code = "import sys, geomem_jax.config_base as c; c.base_config(); assert 'jax' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_readme_keys_table_names_every_key():
    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme[readme.index("### Keys"):readme.index("## Run directory")]
    missing = [k for k in _leaf_keys(config_lib.base_config()) if f"`{k}`" not in table]
    assert not missing, f"README Keys table lacks {missing}"


def _cfg(**sections):
    cfg = config_lib.base_config()
    for dotted, value in sections.items():
        section, key = dotted.split("__")
        cfg[section][key] = value
    return cfg


@pytest.mark.parametrize("family", ["transformer", "mamba"])
def test_bfloat16_is_accepted_for_the_sequence_models(family):
    config_lib.check_config(_cfg(model__family=family, model__dtype="bfloat16"))


@pytest.mark.parametrize("family", ["transformer", "mamba"])
def test_unknown_dtype_is_refused_before_any_compute(family):
    with pytest.raises(ConfigError, match=r"model\.dtype.*float32, bfloat16"):
        config_lib.check_config(_cfg(model__family=family, model__dtype="float16"))


@pytest.mark.parametrize("field,value", [("b1", 0.5), ("b2", 0.9), ("eps", 1e-6)])
def test_node2vec_refuses_adam_settings_it_does_not_read(field, value):
    cfg = _cfg(model__family="node2vec", opt__schedule="constant", opt__warmup_steps=0)
    config_lib.check_config(cfg)
    cfg.opt[field] = value
    with pytest.raises(ConfigError, match=f"opt.{field}"):
        config_lib.check_config(cfg)
