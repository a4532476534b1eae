"""Decoder-only Transformer (flax.linen) with every ablation switch of SPEC §4.

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
    def __call__(self, h_BxTxD, mask_TxT, dropout_rate, deterministic):
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
            return add(h_BxTxD, drop(linear(self._norm(h_BxTxD, "ln"))))
        if self.attention:
            attn = nn.MultiHeadDotProductAttention(
                num_heads=self.heads,
                kernel_init=LINEAR_INIT,
                deterministic=True,
                name="attn",
                dtype=self.dtype,
            )
            x = self._norm(h_BxTxD, "ln1")
            h_BxTxD = add(h_BxTxD, drop(attn(x, x, mask=mask_TxT)))
        x = self._norm(h_BxTxD, "ln2")
        x = nn.gelu(dense(4 * self.width, "mlp_in")(x))
        return add(h_BxTxD, drop(dense(self.width, "mlp_out")(x)))


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
    def __call__(self, tokens_BxT, *, dropout_rate=0.0, deterministic=True, hidden_only=False):
        """Logits B x T x V, or with `hidden_only` the final hidden states B x T x D, to be
        unembedded (`models.common.unembed`) only at the positions that are read."""
        # N(0, 1) rows; the trainer rescales to the experiment's (swept) init scale.
        table_VxD = self.param("embed", _scaled_rowwise(1.0), (self.vocab_size, self.width))
        if self.freeze_embeddings:
            table_VxD = jax.lax.stop_gradient(table_VxD)
        h_BxTxD = jnp.take(table_VxD, tokens_BxT, axis=0)
        seq_len = tokens_BxT.shape[-1]
        if self.positions:
            pos_TxD = self.param("positions", _scaled_rowwise(self.position_std), (self.max_len, self.width))
            h_BxTxD = h_BxTxD + pos_TxD[:seq_len]
        key = None if deterministic else self.make_rng("dropout")
        h_BxTxD = dropout(h_BxTxD, dropout_rate, key, deterministic)
        causal_TxT = jnp.tril(jnp.ones((seq_len, seq_len), bool))
        for i in range(self.layers):
            h_BxTxD = Block(
                self.width, self.heads, self.attention, self.residual, self.layernorm,
                self.mlp_only, self.dtype, name=f"block{i}",
            )(h_BxTxD, causal_TxT, dropout_rate, deterministic)
        if self.layernorm and not self.mlp_only:
            h_BxTxD = nn.LayerNorm(name="ln_f", dtype=self.dtype)(h_BxTxD)
        if self.tied:
            out_VxD = table_VxD
        else:
            out_VxD = self.param("unembed", _scaled_rowwise(1.0), (self.vocab_size, self.width))
        return h_BxTxD if hidden_only else unembed(h_BxTxD, out_VxD)
