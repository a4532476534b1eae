"""Pieces shared by every sequence model: size-independent table init, dropout with a traced rate,
the unembedding."""

import jax
import jax.numpy as jnp


def rowwise_normal(key, shape, dtype=jnp.float32):
    """N(0, 1) table whose row i depends only on (key, i), not on the number of rows.

    A graph padded into a sweep of larger graphs has a larger vocabulary; drawing
    each row from its own folded key gives the padded run the same initial rows
    as the same graph run alone, so both follow the same trajectory.
    """
    rows, *rest = shape
    row_keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(rows))
    return jax.vmap(lambda k: jax.random.normal(k, tuple(rest), dtype))(row_keys)


def dropout(x, rate, key, deterministic: bool):
    """Inverted dropout whose rate may be a traced (swept) scalar; rate 0 is the identity."""
    if deterministic or key is None:
        return x
    keep = 1.0 - rate
    mask = jax.random.bernoulli(key, jnp.clip(keep, 1e-6, 1.0), x.shape)
    return jnp.where(mask, x / jnp.maximum(keep, 1e-6), 0.0).astype(x.dtype)


def unembed(h_xD, table_VxD):
    """Float32 logits h · tableᵀ over the last axis (in the hidden states' dtype, as the model runs).

    The models call it on every position; the trainer calls it on the hidden states of only
    the positions that carry loss or are decoded.
    """
    return jnp.einsum("...d,vd->...v", h_xD, table_VxD.astype(h_xD.dtype)).astype(jnp.float32)
