"""The in-weights sequence models (Transformer, Mamba) as pure functions of their params: the
flax module of a config, where its node tables live, the optimiser, and the train state's
initialisation and update, shared by the sequence and in-context programs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from geomem_jax import config, evals
from geomem_jax.errors import ConfigError
from geomem_jax.models.common import unembed
from geomem_jax.program import guarded_update, initial_state

# ----------------------------------------------------------------------------- model


def build_model(model_cfg, vocab_size: int, max_len: int):
    """The flax module of `model.family` with the config's static switches."""
    if model_cfg.family == "transformer":
        from geomem_jax.models.transformer import Transformer

        if model_cfg.width % model_cfg.heads:
            raise ConfigError("model.heads", model_cfg.heads, f"a divisor of model.width={model_cfg.width}")
        return Transformer(
            vocab_size=vocab_size, max_len=max_len, width=model_cfg.width, layers=model_cfg.layers,
            heads=model_cfg.heads, attention=model_cfg.attention, residual=model_cfg.residual,
            layernorm=model_cfg.layernorm, positions=model_cfg.positions, tied=model_cfg.tied,
            freeze_embeddings=model_cfg.freeze_embeddings, mlp_only=model_cfg.mlp_only,
            position_std=model_cfg.position_std, dtype=_dtype(model_cfg.dtype),
        )
    if model_cfg.family == "mamba":
        from geomem_jax.models.mamba import Mamba

        return Mamba(
            vocab_size=vocab_size, max_len=max_len, width=model_cfg.width, layers=model_cfg.layers,
            d_state=model_cfg.d_state, d_conv=model_cfg.d_conv, expand=model_cfg.expand,
            tied=model_cfg.tied, layernorm=model_cfg.layernorm, residual=model_cfg.residual,
            freeze_embeddings=model_cfg.freeze_embeddings, embed_std=1.0,  # scaled by init_scale later
            dtype=_dtype(model_cfg.dtype),
        )
    raise ConfigError("model.family", model_cfg.family, f"one of {', '.join(config.MODEL_FAMILIES)}")


def _dtype(name: str):
    allowed = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
    if name not in allowed:
        raise ConfigError("model.dtype", name, "one of float32, bfloat16")
    return allowed[name]


def table_paths(model_cfg) -> dict:
    """Where the node tables live in the params tree (read by the analysis stage)."""
    if model_cfg.family == "mamba":
        embed, unembed = ("params", "embed", "embedding"), ("params", "unembed", "embedding")
    else:
        embed, unembed = ("params", "embed"), ("params", "unembed")
    bilinear = None
    if model_cfg.family == "transformer" and model_cfg.mlp_only and model_cfg.layers == 1:
        bilinear = ("params", "block0", "linear", "kernel")
    return {
        "embedding": list(embed),
        "output_embedding": None if model_cfg.tied else list(unembed),
        "bilinear": list(bilinear) if bilinear else None,
    }


# ----------------------------------------------------------------------------- the model as pure functions


def sequence_net(model, model_cfg) -> evals.Net:
    """The model as pure functions of the params (`evals.Net`).

    hidden(params, tokens, hp=None, key=None): final hidden states (dropout when a key is given);
    logits(params, h_xD, vocab_mask_V): the (tied or untied) unembedding of only those states;
    cached(params, tokens, cache, start): hidden states attending to cached earlier positions,
    and the extended cache (Transformer only; None for Mamba).
    """
    paths = table_paths(model_cfg)
    out_path = paths["output_embedding"] or paths["embedding"]
    frozen = model_cfg.freeze_embeddings and not paths["output_embedding"]

    def hidden(params, tokens, hp=None, key=None):
        if key is None:
            return model.apply({"params": params}, tokens, deterministic=True, hidden_only=True)
        return model.apply({"params": params}, tokens, dropout_rate=hp["dropout"], deterministic=False,
                           rngs={"dropout": key}, hidden_only=True)

    def logits(params, h_xD, vocab_mask_V):
        table_VxD = leaf(params, out_path)
        table_VxD = jax.lax.stop_gradient(table_VxD) if frozen else table_VxD  # as inside the model
        return evals.masked(unembed(h_xD, table_VxD), vocab_mask_V)

    def cached(params, tokens, cache, start):
        return model.apply({"params": params}, tokens, hidden_only=True, cache=cache, start=start, return_cache=True)

    return evals.Net(hidden, logits, cached)  # Transformer (keys/values) and Mamba (recurrent state) alike


def leaf(params, path):
    """The array at a `table_paths` path (its leading "params" is the variables' collection)."""
    node = params
    for part in path[1:]:
        node = node[part]
    return node


# ----------------------------------------------------------------------------- optimiser and train state


def lr_at(step, peak, total_steps: int, warmup_steps: int, schedule: str, final_fraction: float):
    """Linear warm-up to `peak`, then cosine decay to peak*final_fraction (or constant)."""
    step = jnp.asarray(step, jnp.float32)
    warm = jnp.minimum(1.0, (step + 1.0) / max(warmup_steps, 1))
    if schedule == "constant":
        decay = 1.0
    else:
        progress = jnp.clip((step - warmup_steps) / max(total_steps - warmup_steps, 1), 0.0, 1.0)
        decay = final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
    factor = jnp.where(step < warmup_steps, warm, decay) if warmup_steps > 0 else decay
    return peak * factor


def adamw(opt_cfg, lr, weight_decay, frozen_key=None):
    """AdamW as in the release (PyTorch semantics: decoupled decay scaled by lr, on all params). A frozen
    table (top-level params key `frozen_key`) gets no update, not even weight decay, and keeps no moments."""
    opt = optax.adamw(lr, b1=opt_cfg.b1, b2=opt_cfg.b2, eps=opt_cfg.eps, weight_decay=weight_decay)
    if frozen_key is None:
        return opt
    label_of = lambda params: {k: "frozen" if k == frozen_key else "train" for k in params}
    return optax.multi_transform({"train": opt, "frozen": optax.set_to_zero()}, label_of)


def frozen_table_key(model_cfg) -> str | None:
    """The top-level params key of the token table when `model.freeze_embeddings` holds it fixed."""
    return table_paths(model_cfg)["embedding"][1] if model_cfg.freeze_embeddings else None


def _scale_tables(params, emb_paths, init_scale):
    """Token (and untied output) tables start at N(0, init_scale^2) rows."""
    params = jax.tree_util.tree_map(lambda x: x, params)  # a copy of the dict tree
    for key in ("embedding", "output_embedding"):
        path = emb_paths[key]
        if path is not None:
            parent = leaf(params, path[:-1])
            parent[path[-1]] = parent[path[-1]] * init_scale
    return params


def init_state(model, params_key, run_key, seq_len: int, emb_paths, init_scale, opt_cfg, frozen_key=None):
    """Fresh train state: params with tables at N(0, init_scale²), AdamW moments, step 0, not diverged."""
    params = model.init({"params": params_key}, jnp.zeros((1, seq_len), jnp.int32))["params"]
    params = _scale_tables(params, emb_paths, init_scale)
    return initial_state(params, adamw(opt_cfg, 0.0, 0.0, frozen_key).init(params), run_key)


def apply_step(opt_cfg, state, loss, grads, opt_state, lr, weight_decay, frozen_key, key):
    """One AdamW update (a frozen table stays as it is), guarded against NaN."""
    updates, opt_state = adamw(opt_cfg, lr, weight_decay, frozen_key).update(grads, opt_state, state["params"])
    return guarded_update(state, optax.apply_updates(state["params"], updates), opt_state, key, loss)
