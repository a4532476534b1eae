"""Mamba model: scan correctness, causality, vmap, vocab padding, tying, freezing, learning, errors."""

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

V, T, W = 12, 6, 16


def tiny(**overrides):
    kwargs = dict(vocab_size=V, max_len=T, width=W, layers=2, d_state=4)
    kwargs.update(overrides)
    return Mamba(**kwargs)


@pytest.fixture(scope="module")
def tokens_BxT():
    return jax.random.randint(jax.random.key(7), (3, T), 0, V)


@pytest.fixture(scope="module")
def model_and_params(tokens_BxT):
    model = tiny()
    return model, jax.jit(model.init)(jax.random.key(0), tokens_BxT)


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


@pytest.mark.parametrize("T_", [1, 7, 16])
def test_parallel_scan_matches_sequential_and_numpy(T_):
    args = _scan_inputs(T_=T_)
    expected = _numpy_scan(*args)
    np.testing.assert_allclose(jax.jit(selective_scan)(*args), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(jax.jit(selective_scan_reference)(*args), expected, rtol=1e-4, atol=1e-5)


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


def test_causality(model_and_params, tokens_BxT):
    model, params = model_and_params
    apply = jax.jit(model.apply)
    base = apply(params, tokens_BxT)
    assert base.shape == (3, T, V)
    for t_changed in (2, T - 1):
        changed = tokens_BxT.at[:, t_changed].set((tokens_BxT[:, t_changed] + 1) % V)
        out = apply(params, changed)
        np.testing.assert_array_equal(out[:, :t_changed], base[:, :t_changed])
        assert np.abs(out[:, t_changed:] - base[:, t_changed:]).max() > 1e-6


def test_vmap_over_keys_matches_separate_calls(tokens_BxT):
    model = tiny()
    keys = jax.random.split(jax.random.key(11), 3)
    run = lambda k: model.apply(model.init(k, tokens_BxT), tokens_BxT)
    stacked = jax.jit(jax.vmap(run))(keys)
    run_one = jax.jit(run)
    for i in range(3):
        np.testing.assert_allclose(stacked[i], run_one(keys[i]), rtol=1e-5, atol=1e-6)
    assert np.abs(stacked[0] - stacked[1]).max() > 1e-6


def test_padded_vocabulary_gives_identical_rows_and_logits(model_and_params, tokens_BxT):
    model, params = model_and_params
    padded = tiny(vocab_size=V + 5)
    padded_params = jax.jit(padded.init)(jax.random.key(0), tokens_BxT)
    table = params["params"]["embed"]["embedding"]
    padded_table = padded_params["params"]["embed"]["embedding"]
    assert table.shape == (V, W) and padded_table.shape == (V + 5, W)
    np.testing.assert_array_equal(padded_table[:V], table)
    assert 0.01 < float(jnp.std(table)) < 0.03  # scaled 0.02 init
    np.testing.assert_allclose(
        padded.apply(padded_params, tokens_BxT)[..., :V], model.apply(params, tokens_BxT), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("tied", [True, False])
def test_logits_are_final_hidden_times_table(tokens_BxT, tied):
    model = tiny(tied=tied, layers=1)
    params = jax.jit(model.init)(jax.random.key(1), tokens_BxT)
    logits, state = jax.jit(lambda p: model.apply(p, tokens_BxT, capture_intermediates=True))(params)
    h_BxTxW = state["intermediates"]["final_norm"]["__call__"][0]
    name = "embed" if tied else "unembed"
    table = np.asarray(params["params"][name]["embedding"], np.float64)
    np.testing.assert_allclose(logits, np.asarray(h_BxTxW, np.float64) @ table.T, rtol=1e-4, atol=1e-6)
    assert ("unembed" in params["params"]) == (not tied)


def test_init_follows_mamba_conventions(model_and_params):
    model, params = model_and_params
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


def test_freeze_embeddings_zero_gradient(tokens_BxT):
    def table_grad(freeze):
        model = tiny(freeze_embeddings=freeze, layers=1)
        params = jax.jit(model.init)(jax.random.key(2), tokens_BxT)
        grads = jax.jit(jax.grad(lambda p: jnp.sum(model.apply(p, tokens_BxT) ** 2)))(params)
        return grads["params"]["embed"]["embedding"], grads["params"]["layers_0"]["in_proj"]["kernel"]

    frozen_table, frozen_inner = table_grad(True)
    free_table, _ = table_grad(False)
    np.testing.assert_array_equal(frozen_table, 0.0)
    assert np.abs(frozen_inner).max() > 0
    assert np.abs(free_table).max() > 0


def test_dropout_traced_rate(model_and_params, tokens_BxT):
    model, params = model_and_params

    @jax.jit
    def run(rate, key):
        return model.apply(params, tokens_BxT, dropout_rate=rate, deterministic=False, rngs={"dropout": key})

    clean = jax.jit(model.apply)(params, tokens_BxT)
    np.testing.assert_allclose(run(0.0, jax.random.key(0)), clean, rtol=1e-5, atol=1e-6)
    assert np.abs(run(0.5, jax.random.key(0)) - clean).max() > 1e-4


def test_ablations_run(tokens_BxT):
    model = tiny(layernorm=False, residual=False, layers=1)
    params = jax.jit(model.init)(jax.random.key(0), tokens_BxT)
    assert "final_norm" not in params["params"] and "norm" not in params["params"]["layers_0"]
    assert np.all(np.isfinite(model.apply(params, tokens_BxT)))


def test_adam_memorizes_next_token_pairs():
    vocab, n_pairs = 16, 10
    rng = np.random.default_rng(0)
    sources = rng.choice(vocab, n_pairs, replace=False)
    targets = rng.integers(0, vocab, n_pairs)
    tokens_Bx2 = jnp.asarray(np.stack([sources, targets], 1))
    model = Mamba(vocab_size=vocab, max_len=2, width=32, layers=1)
    params = jax.jit(model.init)(jax.random.key(0), tokens_Bx2)
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
    assert float(first_loss) > 2.0  # ≈ log(16) at init
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


def test_sequence_longer_than_max_len_raises():
    model = tiny(max_len=4)
    with pytest.raises(ValueError, match="max_len"):
        model.init(jax.random.key(0), jnp.zeros((1, 5), jnp.int32))
