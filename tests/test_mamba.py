"""Mamba model: scan correctness, causality, vmap, vocab padding, tying, freezing, learning, errors.

Compilation dominates on CPU, so tests share one jitted init/apply of a tiny model
and use `init_with_output` where a fresh model is needed (one compile, not two).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from geomem_jax.errors import ConfigError
from geomem_jax.models.mamba import (
    Mamba,
    causal_depthwise_conv,
    selective_scan,
    selective_scan_reference,
)

pytestmark = pytest.mark.usefixtures("optimized_compiles")  # numbers of optimised programs, as users run

V, T, W = 12, 6, 16


def tiny(**overrides):
    kwargs = dict(vocab_size=V, max_len=T, width=W, layers=2, d_state=4)
    kwargs.update(overrides)
    return Mamba(**kwargs)


@pytest.fixture(scope="module")
def tokens_BxT():
    return jax.random.randint(jax.random.key(7), (3, T), 0, V)


@pytest.fixture(scope="module")
def base(tokens_BxT):
    """The 2-layer tiny model, its params, and jitted init/apply shared by tests (compiled once)."""
    model = tiny()
    init, apply = jax.jit(model.init), jax.jit(model.apply)
    return model, init(jax.random.key(0), tokens_BxT), init, apply


def _scan_inputs(B=2, T_=7, E=5, N=3, seed=0):
    k = jax.random.split(jax.random.key(seed), 6)
    x = jax.random.normal(k[0], (B, T_, E))
    delta = jax.nn.softplus(jax.random.normal(k[1], (B, T_, E)))
    A = -jnp.exp(jax.random.normal(k[2], (E, N)))
    Bm = jax.random.normal(k[3], (B, T_, N))
    C = jax.random.normal(k[4], (B, T_, N))
    D = jax.random.normal(k[5], (E,))
    return x, delta, A, Bm, C, D


def _numpy_scan(x, delta, A, Bm, C, D):
    """Plain loop over the recurrence, written independently of the module."""
    x, delta, A, Bm, C, D = (np.asarray(a, np.float64) for a in (x, delta, A, Bm, C, D))
    B, T_, E = x.shape
    y = np.zeros_like(x)
    for b in range(B):
        h = np.zeros(A.shape)
        for t in range(T_):
            h = np.exp(delta[b, t][:, None] * A) * h + delta[b, t][:, None] * Bm[b, t][None, :] * x[b, t][:, None]
            y[b, t] = h @ C[b, t] + D * x[b, t]
    return y


@pytest.mark.parametrize("T_", [1, 13])
def test_parallel_scan_matches_sequential_and_numpy(T_):
    args = _scan_inputs(T_=T_)
    expected = _numpy_scan(*args)
    parallel, sequential = jax.jit(lambda *a: (selective_scan(*a), selective_scan_reference(*a)))(*args)
    np.testing.assert_allclose(parallel, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(sequential, expected, rtol=1e-4, atol=1e-5)


def test_causal_conv_matches_numpy():
    k = jax.random.split(jax.random.key(3), 3)
    x = np.asarray(jax.random.normal(k[0], (2, 5, 3)))
    w = np.asarray(jax.random.normal(k[1], (4, 3)))
    bias = np.asarray(jax.random.normal(k[2], (3,)))
    expected = np.zeros_like(x) + bias
    for t in range(5):
        for j in range(4):  # kernel tap j multiplies x at time t - 3 + j
            if t - 3 + j >= 0:
                expected[:, t] += w[j] * x[:, t - 3 + j]
    np.testing.assert_allclose(causal_depthwise_conv(x, w, bias), expected, rtol=1e-5, atol=1e-6)

def test_causality(base, tokens_BxT):
    _, params, _, apply = base
    reference = apply(params, tokens_BxT)
    assert reference.shape == (3, T, V)
    for t_changed in (2, T - 1):
        changed = tokens_BxT.at[:, t_changed].set((tokens_BxT[:, t_changed] + 1) % V)
        out = apply(params, changed)
        np.testing.assert_array_equal(out[:, :t_changed], reference[:, :t_changed])
        assert np.abs(out[:, t_changed:] - reference[:, t_changed:]).max() > 1e-6


def test_vmap_over_keys_matches_separate_calls(base, tokens_BxT):
    model, _, init, apply = base
    keys = jax.random.split(jax.random.key(11), 3)
    stacked = jax.jit(jax.vmap(lambda k: model.apply(model.init(k, tokens_BxT), tokens_BxT)))(keys)
    for i in range(3):
        np.testing.assert_allclose(stacked[i], apply(init(keys[i], tokens_BxT), tokens_BxT), rtol=1e-5, atol=1e-6)
    assert np.abs(stacked[0] - stacked[1]).max() > 1e-6


def test_padded_vocabulary_gives_identical_rows_and_logits(base, tokens_BxT):
    _, params, _, apply = base
    padded = tiny(vocab_size=V + 5)
    padded_logits, padded_params = jax.jit(padded.init_with_output)(jax.random.key(0), tokens_BxT)
    table = params["params"]["embed"]["embedding"]
    padded_table = padded_params["params"]["embed"]["embedding"]
    assert table.shape == (V, W) and padded_table.shape == (V + 5, W)
    np.testing.assert_array_equal(padded_table[:V], table)
    assert 0.01 < float(jnp.std(padded_table)) < 0.03  # default embed_std 0.02
    np.testing.assert_allclose(padded_logits[..., :V], apply(params, tokens_BxT), rtol=1e-5, atol=1e-6)


def _check_logits_against_table(logits, variables, table_name):
    h_BxTxW = np.asarray(variables["intermediates"]["final_norm"]["__call__"][0], np.float64)
    table = np.asarray(variables["params"][table_name]["embedding"], np.float64)
    np.testing.assert_allclose(logits, h_BxTxW @ table.T, rtol=1e-4, atol=1e-6)


def test_tied_logits_are_final_hidden_times_embedding(base, tokens_BxT):
    model, params, _, _ = base
    logits, state = jax.jit(lambda p: model.apply(p, tokens_BxT, capture_intermediates=True))(params)
    _check_logits_against_table(logits, {**params, **state}, "embed")
    assert "unembed" not in params["params"]


def test_untied_logits_use_separate_rowwise_table(tokens_BxT):
    model = tiny(tied=False, layers=0)  # no blocks: cheap to compile, same output path
    logits, variables = jax.jit(lambda k: model.init_with_output(k, tokens_BxT, capture_intermediates=True))(
        jax.random.key(1)
    )
    _check_logits_against_table(logits, variables, "unembed")
    out_table, in_table = variables["params"]["unembed"]["embedding"], variables["params"]["embed"]["embedding"]
    assert out_table.shape == (V, W) and np.abs(out_table - in_table).max() > 1e-3


def test_embed_std_scales_rowwise_tables(base, tokens_BxT):
    _, params, _, _ = base
    unit = tiny(embed_std=1.0, layers=0)  # the table's rng depends on its path only, not on the blocks
    unit_table = jax.jit(lambda k: unit.init(k, tokens_BxT)["params"]["embed"]["embedding"])(jax.random.key(0))
    assert 0.8 < float(jnp.std(unit_table)) < 1.2
    np.testing.assert_allclose(unit_table * 0.02, params["params"]["embed"]["embedding"], rtol=1e-6)


def test_init_follows_mamba_conventions(base):
    model, params, _, _ = base
    block = params["params"]["layers_0"]
    E = 2 * W
    assert model.resolved_dt_rank == math.ceil(W / 16)
    np.testing.assert_allclose(jnp.exp(block["A_log"]), np.tile(np.arange(1, 5), (E, 1)), rtol=1e-6)
    np.testing.assert_array_equal(block["D"], np.ones(E))
    dt = jax.nn.softplus(block["dt_proj"]["bias"])
    assert float(dt.min()) >= 1e-3 * 0.999 and float(dt.max()) <= 1e-1 * 1.001
    assert block["in_proj"]["kernel"].shape == (W, 2 * E)
    assert block["x_proj"]["kernel"].shape == (E, model.resolved_dt_rank + 2 * 4)
    assert block["conv_kernel"].shape == (4, E)
    assert 0.015 < float(jnp.std(block["in_proj"]["kernel"])) < 0.025


def test_freeze_embeddings_zero_gradient(base, tokens_BxT):
    _, params, _, _ = base
    # One-layer models read the base tree (layers_1 is ignored): no fresh init to compile.
    model, frozen = tiny(layers=1), tiny(layers=1, freeze_embeddings=True)

    @jax.jit
    def grads(p):
        loss = lambda m: lambda p: jnp.sum(m.apply(p, tokens_BxT) ** 2)
        return jax.grad(loss(frozen))(p)["params"], jax.grad(loss(model))(p)["params"]

    frozen_grads, free_grads = grads(params)
    np.testing.assert_array_equal(frozen_grads["embed"]["embedding"], 0.0)
    assert np.abs(frozen_grads["layers_0"]["in_proj"]["kernel"]).max() > 0
    assert np.abs(free_grads["embed"]["embedding"]).max() > 0


def test_dropout_traced_rate(base, tokens_BxT):
    model, params, _, apply = base

    @jax.jit
    def run(rate, key):
        return model.apply(params, tokens_BxT, dropout_rate=rate, deterministic=False, rngs={"dropout": key})

    clean = apply(params, tokens_BxT)
    np.testing.assert_allclose(run(0.0, jax.random.key(0)), clean, rtol=1e-5, atol=1e-6)
    assert np.abs(run(0.5, jax.random.key(0)) - clean).max() > 1e-4


def test_ablations_run(base, tokens_BxT):
    _, params, _, apply = base
    model = tiny(layernorm=False, residual=False)
    shapes = jax.eval_shape(model.init, jax.random.key(0), tokens_BxT)["params"]
    assert "final_norm" not in shapes and "norm" not in shapes["layers_0"]
    logits = jax.jit(model.apply)(params, tokens_BxT)  # norm params in the base tree go unused
    assert np.all(np.isfinite(logits))
    assert np.abs(logits - apply(params, tokens_BxT)).max() > 1e-4


def test_adam_memorizes_next_token_pairs(base):
    _, params, _, _ = base
    rng = np.random.default_rng(0)
    sources = rng.choice(V, 10, replace=False)
    targets = rng.integers(0, V, 10)
    tokens_Bx2 = jnp.asarray(np.stack([sources, targets], 1))
    model = tiny(layers=1)  # trains from the base tree (layers_1 unused)
    opt = optax.adam(3e-2)

    def loss_fn(p):
        logits = model.apply(p, tokens_Bx2)[:, 0]  # predict the target from the source
        return optax.softmax_cross_entropy_with_integer_labels(logits, tokens_Bx2[:, 1]).mean()

    @jax.jit
    def train(p):
        def step(carry, _):
            p, s = carry
            loss, g = jax.value_and_grad(loss_fn)(p)
            updates, s = opt.update(g, s, p)
            return (optax.apply_updates(p, updates), s), loss

        (p, _), losses = jax.lax.scan(step, (p, opt.init(p)), None, length=100)
        return losses[0], loss_fn(p)

    first_loss, final_loss = train(params)
    assert float(first_loss) > 2.0  # ≈ log(12) at init
    assert float(final_loss) < 0.05


@pytest.mark.parametrize(
    "field, overrides",
    [
        ("model.d_state", dict(d_state=0)),
        ("model.expand", dict(expand=0)),
        ("model.expand", dict(expand=-2)),
        ("model.d_conv", dict(d_conv=0)),
        ("model.dt_rank", dict(dt_rank=0)),
    ],
)
def test_bad_config_raises_config_error(field, overrides):
    with pytest.raises(ConfigError) as info:
        tiny(**overrides)
    assert info.value.field == field
    assert field in str(info.value)


def test_sequence_longer_than_max_len_raises(base):
    model, params, _, _ = base
    with pytest.raises(ValueError, match="max_len"):
        model.apply(params, jnp.zeros((1, T + 1), jnp.int32))


def test_scan_from_a_state_continues_the_recurrence():
    """Scanning 0..T-1 at once equals scanning 0..k-1, then k..T-1 from the returned last state."""
    x, delta, A, Bm, C, D = _scan_inputs(T_=7)
    want = _numpy_scan(x, delta, A, Bm, C, D)
    cut = lambda a, sl: a[:, sl]
    y0, h = selective_scan(*(cut(a, slice(0, 3)) for a in (x, delta)), A, *(cut(a, slice(0, 3)) for a in (Bm, C)), D,
                           return_state=True)
    y1 = selective_scan(*(cut(a, slice(3, 7)) for a in (x, delta)), A, *(cut(a, slice(3, 7)) for a in (Bm, C)), D,
                        h0_BxExN=h)
    np.testing.assert_allclose(np.concatenate([y0, y1], axis=1), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shared,d_conv", [(False, 4), (True, 4), (False, 1)])
def test_cached_positions_equal_the_full_forward(tokens_BxT, shared, d_conv):
    """A prefix run once (per row, or once for all rows), then one token at a time from the recurrent cache
    (the conv's last inputs and the SSM state): the hidden states of the full forward pass."""
    model = tiny(d_conv=d_conv)
    params = model.init(jax.random.key(1), tokens_BxT)["params"]
    tokens = np.array(tokens_BxT)
    if shared:
        tokens[:, :2] = tokens[0, :2]  # every row starts with the same two tokens
    apply = jax.jit(model.apply, static_argnames=("hidden_only", "return_cache", "start"))
    full = apply({"params": params}, tokens, hidden_only=True)
    prefix = tokens[:1, :2] if shared else tokens[:, :2]
    h, cache = apply({"params": params}, prefix, hidden_only=True, return_cache=True)
    np.testing.assert_allclose(jnp.broadcast_to(h, (3, 2, W)), full[:, :2], rtol=1e-5, atol=1e-5)
    for t in range(2, T):
        h, cache = apply({"params": params}, tokens[:, t:t + 1], hidden_only=True, cache=cache, start=t,
                         return_cache=True)
        np.testing.assert_allclose(h[:, 0], full[:, t], rtol=1e-5, atol=1e-5)
    assert cache[0]["conv"].shape == (3, d_conv - 1, 2 * W) and cache[0]["ssm"].shape == (3, 2 * W, 4)


def test_bfloat16_compute_keeps_float32_params_and_scan_state(base, tokens_BxT):
    """`dtype=bfloat16` (model.dtype) runs the norms, projections and conv in bfloat16: the logits move
    away from float32's, but only by bfloat16 rounding; params and the SSM state stay float32."""
    model, params, _, apply = base
    want = apply(params, tokens_BxT)
    bf16 = tiny(dtype=jnp.bfloat16)
    assert {x.dtype for x in jax.tree_util.tree_leaves(jax.eval_shape(bf16.init, jax.random.key(0), tokens_BxT))} \
        == {jnp.dtype(jnp.float32)}
    got, cache = jax.jit(lambda p, t: bf16.apply(p, t, return_cache=True))(params, tokens_BxT)
    hidden = jax.jit(lambda p, t: bf16.apply(p, t, hidden_only=True))(params, tokens_BxT)
    assert hidden.dtype == jnp.bfloat16 and got.dtype == jnp.float32
    assert all(layer["ssm"].dtype == jnp.float32 for layer in cache)
    err = float(jnp.max(jnp.abs(got - want)))
    assert 0 < err <= 0.05 * float(jnp.max(jnp.abs(want)))  # bfloat16 keeps 8 bits: ~0.4% per rounding


def test_build_model_passes_model_dtype_to_mamba():
    from geomem_jax.config import base_config
    from geomem_jax.sequence_model import build_model

    cfg = base_config().model
    cfg.family, cfg.dtype = "mamba", "bfloat16"
    assert build_model(cfg, V, T).dtype == jnp.bfloat16
    cfg.dtype = "float32"
    assert build_model(cfg, V, T).dtype == jnp.float32
