"""Mamba-1 language model in Flax linen: a drop-in for the Transformer (same call signature).

Block (pre-norm residual, as in Mamba-1):
    LayerNorm -> in_proj (width -> 2E) -> split (x, z)
    x: causal depthwise conv1d (kernel d_conv, left padding) -> SiLU -> selective SSM -> + D*x
    gate with SiLU(z) -> out_proj (E -> width) -> residual add
then a final LayerNorm and logits against the (tied) token table.

LayerNorm (not RMSNorm) is used so the `layernorm` ablation switch means the same
thing as in the Transformer. The model has no positional table: order enters only
through the causal conv and the recurrence, so `max_len` is kept for the shared
signature and as a sanity bound on the sequence length.

`dtype` is the compute dtype of the norms, projections and conv (as the Transformer's `dtype`);
params, the selective scan and its SSM state stay float32 (a bfloat16 decay product over many
steps would lose the memory the scan carries); the conv cache holds inputs in the compute dtype.

The selective scan is a parallel `jax.lax.associative_scan` over time of
h_t = Ā_t * h_{t-1} + B̄_t x_t (O(log T) depth, good on TPU and fine under vmap);
`selective_scan_reference` is the sequential `lax.scan` used by the tests.
"""

import math
import numbers

import flax.linen as nn
import jax
import jax.numpy as jnp

from geomem_jax.errors import ConfigError
from geomem_jax.models.common import dropout, rowwise_normal, unembed

_LINEAR_INIT = nn.initializers.normal(stddev=0.02)
_DT_MIN, _DT_MAX = 1e-3, 1e-1


def _table_init(std: float):
    """N(0, std²) table init whose rows do not depend on the vocabulary size."""
    return lambda key, shape, dtype=jnp.float32: std * rowwise_normal(key, shape, dtype)


def _discretize(x_BxTxE, delta_BxTxE, A_ExN, B_BxTxN):
    """Zero-order-hold Ā = exp(ΔA) and Euler B̄x = ΔBx, both B×T×E×N."""
    delta_BxTxEx1 = delta_BxTxE[..., None]
    decay_BxTxExN = jnp.exp(delta_BxTxEx1 * A_ExN)
    drive_BxTxExN = delta_BxTxEx1 * B_BxTxN[:, :, None, :] * x_BxTxE[..., None]
    return decay_BxTxExN, drive_BxTxExN


def selective_scan(x_BxTxE, delta_BxTxE, A_ExN, B_BxTxN, C_BxTxN, D_E, h0_BxExN=None, return_state=False):
    """Selective SSM output y_t = C_t·h_t + D*x_t with h_t = Ā_t h_{t-1} + B̄_t x_t, h_{-1} = h0 (0 if None).

    Parallel associative scan over time (axis 1). Inputs: x and Δ (>0) are B×T×E,
    A (negative) is E×N, B and C are B×T×N, D is E. Returns y_BxTxE, and with `return_state`
    also the last state h_{T-1} (B×E×N: the recurrent cache that decoding continues from).
    """
    decay_BxTxExN, drive_BxTxExN = _discretize(x_BxTxE, delta_BxTxE, A_ExN, B_BxTxN)

    def compose(earlier, later):
        # Two affine maps h -> a*h + b applied in time order compose to one.
        a1, b1 = earlier
        a2, b2 = later
        return a1 * a2, a2 * b1 + b2

    decay_cum_BxTxExN, h_BxTxExN = jax.lax.associative_scan(compose, (decay_BxTxExN, drive_BxTxExN), axis=1)
    if h0_BxExN is not None:  # the composed map applied to h0 instead of 0
        h_BxTxExN = h_BxTxExN + decay_cum_BxTxExN * h0_BxExN[:, None]
    y_BxTxE = jnp.einsum("bten,btn->bte", h_BxTxExN, C_BxTxN) + D_E * x_BxTxE
    return (y_BxTxE, h_BxTxExN[:, -1]) if return_state else y_BxTxE


def selective_scan_reference(x_BxTxE, delta_BxTxE, A_ExN, B_BxTxN, C_BxTxN, D_E):
    """Sequential `lax.scan` version of `selective_scan` (same arguments and result); for tests."""
    decay_BxTxExN, drive_BxTxExN = _discretize(x_BxTxE, delta_BxTxE, A_ExN, B_BxTxN)

    def step(h_BxExN, inputs):
        decay_BxExN, drive_BxExN, C_BxN = inputs
        h_BxExN = decay_BxExN * h_BxExN + drive_BxExN
        return h_BxExN, jnp.einsum("ben,bn->be", h_BxExN, C_BxN)

    time_major = lambda a: jnp.moveaxis(a, 1, 0)
    h0_BxExN = jnp.zeros_like(decay_BxTxExN[:, 0])
    _, y_TxBxE = jax.lax.scan(
        step, h0_BxExN, (time_major(decay_BxTxExN), time_major(drive_BxTxExN), time_major(C_BxTxN))
    )
    return jnp.moveaxis(y_TxBxE, 0, 1) + D_E * x_BxTxE


def causal_depthwise_conv(x_BxTxE, kernel_KxE, bias_E, past_BxKxE=None):
    """y_t = bias + Σ_k kernel[k] * x_{t-(K-1)+k}: each channel sees only itself and the past.
    `past_BxKxE` holds the K−1 inputs before x_0 (zeros if None: the sequence starts here)."""
    K = kernel_KxE.shape[0]
    T = x_BxTxE.shape[1]
    if past_BxKxE is None:
        padded_BxPxE = jnp.pad(x_BxTxE, ((0, 0), (K - 1, 0), (0, 0)))
    else:
        padded_BxPxE = jnp.concatenate([past_BxKxE, x_BxTxE], axis=1)
    y_BxTxE = sum(kernel_KxE[k] * padded_BxPxE[:, k : k + T] for k in range(K))
    return y_BxTxE + bias_E


def _a_log_init(key, shape, dtype=jnp.float32):
    """A_log[e, n] = log(n + 1): the S4D-real init, A = -(1..d_state) for every channel."""
    del key
    E, N = shape
    return jnp.log(jnp.broadcast_to(jnp.arange(1, N + 1, dtype=dtype), (E, N)))


def _dt_bias_init(key, shape, dtype=jnp.float32):
    """Bias with softplus(bias) = dt, dt log-uniform in [1e-3, 1e-1] per channel."""
    u = jax.random.uniform(key, shape, dtype)
    dt = jnp.exp(u * (math.log(_DT_MAX) - math.log(_DT_MIN)) + math.log(_DT_MIN))
    return dt + jnp.log(-jnp.expm1(-dt))  # inverse of softplus


def _norm(enabled: bool, name: str, dtype=jnp.float32):
    """LayerNorm, or the identity when the `layernorm` ablation is off."""
    return nn.LayerNorm(epsilon=1e-5, name=name, dtype=dtype) if enabled else (lambda x: x)


class MambaBlock(nn.Module):
    """One Mamba-1 mixer with its pre-norm; returns the branch output (residual is added outside)."""

    width: int
    d_state: int
    d_conv: int
    expand: int
    dt_rank: int
    layernorm: bool
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, h_BxTxW, cache=None):
        """Branch output, and the block's cache after these positions: {"conv": the last d_conv − 1
        conv inputs (B×(d_conv−1)×E), "ssm": the last SSM state (B×E×N)}. `cache` (leading size B,
        or 1 for a prefix shared by every row) continues an earlier call; None starts a sequence."""
        E, N, R = self.expand * self.width, self.d_state, self.dt_rank
        b = h_BxTxW.shape[0]
        dense = lambda features, name, **kw: nn.Dense(features, kernel_init=_LINEAR_INIT, name=name, dtype=self.dtype,
                                                      **kw)
        u_BxTxW = _norm(self.layernorm, "norm", self.dtype)(h_BxTxW)
        xz_BxTx2E = dense(2 * E, "in_proj", use_bias=False)(u_BxTxW)
        x_BxTxE, z_BxTxE = jnp.split(xz_BxTx2E, 2, axis=-1)
        past = None if cache is None else jnp.broadcast_to(cache["conv"], (b, self.d_conv - 1, E))
        # the conv's inputs after these positions (the zeros of a fresh start count as inputs)
        seen_BxPxE = x_BxTxE if past is None else jnp.concatenate([past, x_BxTxE], axis=1)
        seen_BxPxE = jnp.pad(seen_BxPxE, ((0, 0), (self.d_conv - 1, 0), (0, 0)))
        new_conv = seen_BxPxE[:, seen_BxPxE.shape[1] - (self.d_conv - 1):]

        # Depthwise conv: PyTorch's default Conv1d init (uniform ±1/sqrt(d_conv)), as in Mamba.
        bound = 1.0 / math.sqrt(self.d_conv)
        conv_init = lambda k, s, d=jnp.float32: jax.random.uniform(k, s, d, -bound, bound)
        kernel_KxE = self.param("conv_kernel", conv_init, (self.d_conv, E))
        conv_bias_E = self.param("conv_bias", nn.initializers.zeros, (E,))
        x_BxTxE = nn.silu(causal_depthwise_conv(x_BxTxE, kernel_KxE.astype(self.dtype), conv_bias_E.astype(self.dtype),
                                                past))

        # Input-dependent Δ (low rank R -> E), B and C.
        dbc_BxTxF = dense(R + 2 * N, "x_proj", use_bias=False)(x_BxTxE)
        dt_low_BxTxR, B_BxTxN, C_BxTxN = jnp.split(dbc_BxTxF, [R, R + N], axis=-1)
        delta_BxTxE = nn.softplus(dense(E, "dt_proj", bias_init=_dt_bias_init)(dt_low_BxTxR))

        A_ExN = -jnp.exp(self.param("A_log", _a_log_init, (E, N)))
        D_E = self.param("D", nn.initializers.ones, (E,))
        h0 = None if cache is None else jnp.broadcast_to(cache["ssm"], (b, E, N))
        f32 = lambda a: a.astype(jnp.float32)  # the scan and its state in float32 whatever the compute dtype
        y_BxTxE, h_last_BxExN = selective_scan(f32(x_BxTxE), f32(delta_BxTxE), A_ExN, f32(B_BxTxN), f32(C_BxTxN),
                                               D_E, h0, return_state=True)

        y_BxTxE = y_BxTxE.astype(self.dtype) * nn.silu(z_BxTxE)
        out_BxTxW = dense(self.width, "out_proj", use_bias=False)(y_BxTxE)
        return out_BxTxW, {"conv": new_conv, "ssm": h_last_BxExN}


class _TokenTable(nn.Module):
    """A V×width table at params[name]["embedding"], initialised row by row."""

    vocab_size: int
    width: int
    std: float

    @nn.compact
    def __call__(self):
        return self.param("embedding", _table_init(self.std), (self.vocab_size, self.width))


def _check_positive(field, value, minimum, allowed):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ConfigError(field, value, allowed)


class Mamba(nn.Module):
    """Mamba-1 decoder: tokens_BxT -> logits_BxTxV, same interface as the Transformer.

    dt_rank defaults to ceil(width / 16). `tied` reuses the token table as the output
    layer; `freeze_embeddings` stops gradients into the token table (the associative
    control); `embed_std` is the std of the token (and untied output) table rows
    (the trainer's `_scale_tables` assumes 1.0); `residual=False` replaces h with the block output instead of adding it.
    `dtype` is the compute dtype (float32 or bfloat16; params and the scan state stay float32).
    Dropout (rate may be traced) acts on the embeddings and on every block output.
    """

    vocab_size: int
    max_len: int
    width: int
    layers: int
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    dt_rank: int | None = None
    tied: bool = True
    layernorm: bool = True
    residual: bool = True
    freeze_embeddings: bool = False
    embed_std: float = 0.02  # 1.0 gives N(0, 1) rows for a trainer that rescales tables itself
    dtype: jnp.dtype = jnp.float32  # compute dtype of norms, projections and conv

    def __post_init__(self):
        # Validate at construction so a bad config fails before any tracing.
        _check_positive("model.d_state", self.d_state, 1, "an integer >= 1 (paper: 16)")
        _check_positive("model.expand", self.expand, 1, "an integer >= 1 (paper: 2)")
        _check_positive("model.d_conv", self.d_conv, 1, "an integer >= 1 (paper: 4)")
        _check_positive("model.width", self.width, 1, "an integer >= 1")
        _check_positive("model.layers", self.layers, 0, "an integer >= 0")
        _check_positive("model.vocab_size", self.vocab_size, 1, "an integer >= 1")
        _check_positive("model.max_len", self.max_len, 1, "an integer >= 1")
        if self.dt_rank is not None:
            _check_positive("model.dt_rank", self.dt_rank, 1, "an integer >= 1 or None (ceil(width/16))")
        super().__post_init__()

    @property
    def resolved_dt_rank(self) -> int:
        """The Δ projection rank actually used."""
        return self.dt_rank if self.dt_rank is not None else math.ceil(self.width / 16)

    @nn.compact
    def __call__(self, tokens_BxT, *, dropout_rate=0.0, deterministic=True, hidden_only=False,
                 cache=None, start: int = 0, return_cache: bool = False):
        """Logits B x T x V, or with `hidden_only` the final hidden states B x T x width.

        The Transformer's cache protocol: `tokens_BxT` sit at positions start .. start+T-1 and
        `cache` (one entry per layer, from an earlier call with `return_cache`) holds the
        recurrent state after positions 0 .. start-1; `return_cache` also returns the state
        after these positions, so greedy decoding feeds one token per step.
        """
        T = tokens_BxT.shape[-1]
        if start + T > self.max_len:
            raise ConfigError("model.max_len", self.max_len, f"at least the sequence length {start + T}")
        drop = lambda x: dropout(
            x, dropout_rate, None if deterministic else self.make_rng("dropout"), deterministic
        )

        table_VxW = _TokenTable(self.vocab_size, self.width, self.embed_std, name="embed")()
        if self.freeze_embeddings:
            table_VxW = jax.lax.stop_gradient(table_VxW)
        h_BxTxW = drop(jnp.take(table_VxW, tokens_BxT, axis=0))

        new_cache = []
        for i in range(self.layers):
            block = MambaBlock(
                self.width, self.d_state, self.d_conv, self.expand, self.resolved_dt_rank,
                self.layernorm, self.dtype, name=f"layers_{i}",
            )
            out_BxTxW, layer_cache = block(h_BxTxW, None if cache is None else cache[i])
            new_cache.append(layer_cache)
            out_BxTxW = drop(out_BxTxW)
            h_BxTxW = h_BxTxW + out_BxTxW if self.residual else out_BxTxW

        h_BxTxW = _norm(self.layernorm, "final_norm", self.dtype)(h_BxTxW)
        if self.tied:
            out_table_VxW = table_VxW
        else:
            out_table_VxW = _TokenTable(self.vocab_size, self.width, self.embed_std, name="unembed")()
        out = h_BxTxW if hidden_only else unembed(h_BxTxW, out_table_VxW)
        return (out, tuple(new_cache)) if return_cache else out
