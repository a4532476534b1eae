"""Decoder-only Transformer (flax.linen) with every ablation switch of the paper.

Pre-LayerNorm blocks, causal multi-head attention, GELU MLP (4x), learned absolute
positions, tied input/output embeddings. Switches: attention / residual /
LayerNorm / positions on or off, untied output table, frozen token table (the
"associative" control), and `mlp_only` blocks that are one linear D x D map with
no nonlinearity (with one layer, no residual, no LayerNorm and no positions the
logits are exactly E W E^T: the "neural network" of the tiny-graph study).

Token and position tables are drawn row by row (`rowwise_normal`) so that a
graph padded into a larger sweep vocabulary starts from the same rows.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from geomem_jax.models.common import dropout, rowwise_normal, unembed

LINEAR_INIT = nn.initializers.normal(0.02)


def _scaled_rowwise(std: float):
    return lambda key, shape, dtype=jnp.float32: std * rowwise_normal(key, shape, dtype)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention (the layout and numerics of flax's
    MultiHeadDotProductAttention: `query` / `key` / `value` / `out` DenseGeneral, q / sqrt(d),
    masked scores at the dtype's minimum, softmax) that can also attend to cached keys and values
    of earlier positions: `cache_kv = (k, v)` of shape B' x S x H x d, with B' = B or 1 (one
    prefix shared by every row). Returns the output and this call's own (k, v)."""

    heads: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x_BxTxD, cache_kv=None):
        width = x_BxTxD.shape[-1]
        dense = lambda name: nn.DenseGeneral((self.heads, width // self.heads), kernel_init=LINEAR_INIT,
                                             name=name, dtype=self.dtype)
        q_BxTxHxd, k_BxTxHxd, v_BxTxHxd = (dense(n)(x_BxTxD) for n in ("query", "key", "value"))
        t = x_BxTxD.shape[1]
        keys, values, mask_TxK = k_BxTxHxd, v_BxTxHxd, jnp.tril(jnp.ones((t, t), bool))
        if cache_kv is not None:
            k_cache, v_cache = (jnp.broadcast_to(c, (x_BxTxD.shape[0],) + c.shape[1:]) for c in cache_kv)
            keys, values = jnp.concatenate([k_cache, keys], 1), jnp.concatenate([v_cache, values], 1)
            mask_TxK = jnp.concatenate([jnp.ones((t, k_cache.shape[1]), bool), mask_TxK], 1)
        q_BxTxHxd = q_BxTxHxd / jnp.sqrt(q_BxTxHxd.shape[-1]).astype(q_BxTxHxd.dtype)
        scores_BxHxTxK = jnp.einsum("bqhd,bkhd->bhqk", q_BxTxHxd, keys)
        scores_BxHxTxK = jnp.where(mask_TxK, scores_BxHxTxK, jnp.finfo(scores_BxHxTxK.dtype).min)
        weights_BxHxTxK = jax.nn.softmax(scores_BxHxTxK).astype(self.dtype)
        out_BxTxHxd = jnp.einsum("bhqk,bkhd->bqhd", weights_BxHxTxK, values)
        out = nn.DenseGeneral(width, axis=(-2, -1), kernel_init=LINEAR_INIT, name="out", dtype=self.dtype)
        return out(out_BxTxHxd), (k_BxTxHxd, v_BxTxHxd)


class Block(nn.Module):
    width: int
    heads: int
    attention: bool
    residual: bool
    layernorm: bool
    mlp_only: bool
    dtype: jnp.dtype = jnp.float32

    def _norm(self, x, name):
        return nn.LayerNorm(name=name, dtype=self.dtype)(x) if self.layernorm else x

    @nn.compact
    def __call__(self, h_BxTxD, dropout_rate, deterministic, cache_kv=None):
        """The block's output and its attention's (k, v) of these positions (None without attention)."""
        def drop(x):
            key = None if deterministic else self.make_rng("dropout")
            return dropout(x, dropout_rate, key, deterministic)

        def add(h, update):
            return h + update if self.residual else update

        dense = lambda features, name: nn.Dense(
            features, kernel_init=LINEAR_INIT, name=name, dtype=self.dtype
        )
        if self.mlp_only:
            # One linear D x D map, no bias, no nonlinearity: logits = E W E^T.
            linear = nn.Dense(self.width, use_bias=False, kernel_init=LINEAR_INIT, name="linear", dtype=self.dtype)
            return add(h_BxTxD, drop(linear(self._norm(h_BxTxD, "ln")))), None
        kv = None
        if self.attention:
            attn = CausalSelfAttention(self.heads, self.dtype, name="attn")
            update, kv = attn(self._norm(h_BxTxD, "ln1"), cache_kv)
            h_BxTxD = add(h_BxTxD, drop(update))
        x = self._norm(h_BxTxD, "ln2")
        x = nn.gelu(dense(4 * self.width, "mlp_in")(x))
        return add(h_BxTxD, drop(dense(self.width, "mlp_out")(x))), kv


class Transformer(nn.Module):
    vocab_size: int
    max_len: int
    width: int = 128
    layers: int = 2
    heads: int = 4
    attention: bool = True
    residual: bool = True
    layernorm: bool = True
    positions: bool = True
    tied: bool = True
    freeze_embeddings: bool = False
    mlp_only: bool = False
    position_std: float = 1.0  # the release draws positions from N(0, 1)
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, tokens_BxT, *, dropout_rate=0.0, deterministic=True, hidden_only=False,
                 cache=None, start: int = 0, return_cache: bool = False):
        """Logits B x T x V, or with `hidden_only` the final hidden states B x T x D, to be
        unembedded (`models.common.unembed`) only at the positions that are read.

        `tokens_BxT` sit at positions start .. start+T-1; `cache` holds every layer's (k, v) of
        positions 0 .. start-1 (from an earlier call with `return_cache`; leading size B, or 1 for
        a prefix shared by all rows). With `return_cache` also returns the cache extended by
        these positions: greedy decoding then feeds one token per step.
        """
        # N(0, 1) rows; the trainer rescales to the experiment's (swept) init scale.
        table_VxD = self.param("embed", _scaled_rowwise(1.0), (self.vocab_size, self.width))
        if self.freeze_embeddings:
            table_VxD = jax.lax.stop_gradient(table_VxD)
        h_BxTxD = jnp.take(table_VxD, tokens_BxT, axis=0)
        seq_len = tokens_BxT.shape[-1]
        if self.positions:
            pos_TxD = self.param("positions", _scaled_rowwise(self.position_std), (self.max_len, self.width))
            h_BxTxD = h_BxTxD + pos_TxD[start:start + seq_len]
        key = None if deterministic else self.make_rng("dropout")
        h_BxTxD = dropout(h_BxTxD, dropout_rate, key, deterministic)
        new_cache = []
        for i in range(self.layers):
            h_BxTxD, kv = Block(
                self.width, self.heads, self.attention, self.residual, self.layernorm,
                self.mlp_only, self.dtype, name=f"block{i}",
            )(h_BxTxD, dropout_rate, deterministic, None if cache is None else cache[i])
            if return_cache:
                new_cache.append(kv if cache is None or kv is None else
                                 tuple(jnp.concatenate([jnp.broadcast_to(c, (x.shape[0],) + c.shape[1:]), x], 1)
                                       for c, x in zip(cache[i], kv)))
        if self.layernorm and not self.mlp_only:
            h_BxTxD = nn.LayerNorm(name="ln_f", dtype=self.dtype)(h_BxTxD)
        if self.tied:
            out_VxD = table_VxD
        else:
            out_VxD = self.param("unembed", _scaled_rowwise(1.0), (self.vocab_size, self.width))
        out = h_BxTxD if hidden_only else unembed(h_BxTxD, out_VxD)
        return (out, tuple(new_cache)) if return_cache else out
