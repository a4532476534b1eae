"""Transformer module: causality, the E W E^T closed form, size-independent init, frozen tables, switches."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geomem_jax.models.transformer import Transformer

pytestmark = pytest.mark.usefixtures("optimized_compiles")  # numbers of optimised programs, as users run

V, T, D = 11, 6, 16


def _model(**kw):
    args = dict(vocab_size=V, max_len=T, width=D, layers=2, heads=2)
    args.update(kw)
    return Transformer(**args)


def _init(model, seed=0):
    return model.init(jax.random.PRNGKey(seed), jnp.zeros((1, T), jnp.int32))["params"]


def _tokens(seed, shape=(3, T)):
    return np.random.default_rng(seed).integers(0, V, size=shape).astype(np.int32)


@pytest.mark.parametrize(
    "switches",
    [dict(), dict(mlp_only=True), dict(attention=False), dict(layernorm=False, residual=False, tied=False)],
    ids=["attention", "mlp_only", "no_attention", "no_ln_no_residual_untied"],
)
def test_causal_logits_ignore_future_tokens(switches):
    model = _model(**switches)
    params = _init(model)
    apply = jax.jit(lambda toks: model.apply({"params": params}, toks))
    tokens = _tokens(1)
    base_BxTxV = np.asarray(apply(tokens))
    assert base_BxTxV.shape == (3, T, V)
    for t in range(T - 1):
        changed = tokens.copy()
        changed[:, t + 1:] = (changed[:, t + 1:] + 1 + np.arange(T - t - 1)) % V  # every later token differs
        out_BxTxV = np.asarray(apply(changed))
        np.testing.assert_array_equal(out_BxTxV[:, : t + 1], base_BxTxV[:, : t + 1])
        if switches.get("attention", True) and not switches.get("mlp_only"):
            # With attention the later positions do see the change (the test can fail).
            diff = np.abs(out_BxTxV[:, t + 1:] - base_BxTxV[:, t + 1:]).max()
            assert diff > 1e-3 * np.abs(base_BxTxV).max()


@pytest.mark.parametrize("residual", [False, True])
def test_mlp_only_single_layer_is_bilinear_E_W_Et(residual):
    model = _model(mlp_only=True, layers=1, residual=residual, layernorm=False, positions=False)
    params = _init(model, seed=3)
    assert set(params) == {"embed", "block0"} and set(params["block0"]) == {"linear"}
    E_VxD = np.asarray(params["embed"], np.float64)
    W_DxD = np.asarray(params["block0"]["linear"]["kernel"], np.float64)
    tokens = _tokens(4)
    logits_BxTxV = np.asarray(model.apply({"params": params}, tokens), np.float64)
    hidden_BxTxD = E_VxD[tokens] @ W_DxD + (E_VxD[tokens] if residual else 0.0)
    np.testing.assert_allclose(logits_BxTxV, hidden_BxTxD @ E_VxD.T, rtol=1e-4, atol=1e-4)
    # Position-free: the same token gives the same logits wherever it sits.
    same = np.full((1, T), 5, np.int32)
    out = np.asarray(model.apply({"params": params}, same))
    np.testing.assert_allclose(out[0], np.broadcast_to(out[0, :1], out[0].shape), atol=1e-6)


def test_tied_logits_are_final_hidden_times_embedding_transpose():
    model = _model(layers=1)
    params = _init(model, seed=5)
    tokens = _tokens(6)
    logits, inter = model.apply({"params": params}, tokens, capture_intermediates=True)
    hidden_BxTxD = np.asarray(inter["intermediates"]["ln_f"]["__call__"][0], np.float64)
    expected = hidden_BxTxD @ np.asarray(params["embed"], np.float64).T
    np.testing.assert_allclose(np.asarray(logits), expected, rtol=1e-4, atol=1e-4)


def test_init_is_independent_of_vocabulary_padding():
    small, big = _init(_model(vocab_size=V), seed=7), _init(_model(vocab_size=V + 7), seed=7)
    assert big["embed"].shape == (V + 7, D)
    np.testing.assert_array_equal(np.asarray(big["embed"][:V]), np.asarray(small["embed"]))
    rest = lambda p: {k: v for k, v in p.items() if k != "embed"}
    jax.tree_util.tree_map(np.testing.assert_array_equal, rest(small), rest(big))
    # Rows are N(0, 1) draws (the trainer rescales them), and not all equal.
    emb = np.asarray(big["embed"])
    assert 0.7 < emb.std() < 1.3 and not np.allclose(emb[0], emb[1])
    other = _init(_model(vocab_size=V), seed=8)
    assert not np.allclose(np.asarray(other["embed"]), np.asarray(small["embed"]))


@pytest.mark.parametrize("tied", [True, False])
def test_frozen_embeddings_get_zero_gradient(tied):
    model = _model(freeze_embeddings=True, tied=tied, layers=1)
    params = _init(model, seed=9)
    tokens = _tokens(10)

    def loss(p):
        logp = jax.nn.log_softmax(model.apply({"params": p}, tokens), axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, jnp.asarray(tokens)[..., None], axis=-1))

    grads = jax.jit(jax.grad(loss))(params)
    assert np.all(np.asarray(grads["embed"]) == 0.0)
    other = [np.abs(np.asarray(g)).sum() for path, g in jax.tree_util.tree_leaves_with_path(grads)
             if path[0].key != "embed"]
    assert all(s > 0 for s in other)  # everything else still learns
    if not tied:
        assert np.abs(np.asarray(grads["unembed"])).sum() > 0
    # Without freezing, the embedding does get a gradient.
    free = _model(tied=tied, layers=1)
    free_grad = jax.jit(jax.grad(lambda p: jnp.sum(free.apply({"params": p}, tokens) ** 2)))(params)
    assert np.abs(np.asarray(free_grad["embed"])).sum() > 0


def _keys(tree, prefix=""):
    out = set()
    for k, v in tree.items():
        out.add(prefix + k)
        if isinstance(v, dict):
            out |= _keys(v, prefix + k + "/")
    return out


def test_switches_shape_the_param_tree():
    full = _keys(_init(_model(layers=1)))
    assert {"embed", "positions", "ln_f", "block0/attn", "block0/ln1", "block0/ln2",
            "block0/mlp_in", "block0/mlp_out"} <= full
    assert "unembed" not in full
    assert _init(_model(layers=1))["positions"].shape == (T, D)

    no_pos = _keys(_init(_model(layers=1, positions=False)))
    assert no_pos == full - {"positions"}
    no_attn = _keys(_init(_model(layers=1, attention=False)))
    assert not any(k.startswith("block0/attn") or k == "block0/ln1" for k in no_attn)
    assert "block0/mlp_in" in no_attn
    no_ln = _keys(_init(_model(layers=1, layernorm=False)))
    assert not any("ln" in k.split("/")[-1] for k in no_ln) and "block0/attn" in no_ln
    untied = _init(_model(layers=1, tied=False))
    assert untied["unembed"].shape == (V, D)
    mlp = _keys(_init(_model(layers=3, mlp_only=True, layernorm=False)))
    assert {k for k in mlp if "/" not in k} == {"embed", "positions", "block0", "block1", "block2"}
    assert all(k.split("/")[1] == "linear" for k in mlp if k.count("/") == 1)
    # residual changes behaviour, not the tree
    no_res = _init(_model(layers=1, residual=False))
    assert _keys(no_res) == full
    toks = _tokens(11)
    a = _model(layers=1).apply({"params": no_res}, toks)
    b = _model(layers=1, residual=False).apply({"params": no_res}, toks)
    assert not np.allclose(np.asarray(a), np.asarray(b))


def test_attention_equals_flax_multi_head_attention_with_a_causal_mask():
    """Same parameters, same numbers as nn.MultiHeadDotProductAttention (the layer it replaced)."""
    import flax.linen as nn

    from geomem_jax.models.transformer import LINEAR_INIT, CausalSelfAttention

    x_BxTxD = jax.random.normal(jax.random.PRNGKey(1), (3, T, D))
    ours = CausalSelfAttention(heads=2)
    params = ours.init(jax.random.PRNGKey(2), x_BxTxD)["params"]
    flax_mha = nn.MultiHeadDotProductAttention(num_heads=2, kernel_init=LINEAR_INIT, deterministic=True)
    mask = jnp.tril(jnp.ones((T, T), bool))
    want = flax_mha.apply({"params": params}, x_BxTxD, x_BxTxD, mask=mask)
    got, _ = ours.apply({"params": params}, x_BxTxD)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shared", [False, True])
def test_cached_positions_equal_the_full_forward(shared):
    """A prefix run once (per row, or once for all rows), then the rest a token at a time from the cache."""
    model = _model(max_len=T)
    params = _init(model, seed=3)
    tokens = _tokens(4)
    if shared:
        tokens[:, :2] = tokens[0, :2]  # every row starts with the same two tokens
    full = model.apply({"params": params}, tokens, hidden_only=True)
    prefix = tokens[:1, :2] if shared else tokens[:, :2]
    h, cache = model.apply({"params": params}, prefix, hidden_only=True, return_cache=True)
    np.testing.assert_allclose(jnp.broadcast_to(h, (3, 2, D)), full[:, :2], rtol=1e-5, atol=1e-5)
    for t in range(2, T):
        h, cache = model.apply({"params": params}, tokens[:, t:t + 1], hidden_only=True, cache=cache, start=t,
                               return_cache=True)
        np.testing.assert_allclose(h[:, 0], full[:, t], rtol=1e-5, atol=1e-5)
    assert cache[0][0].shape == (3, T, 2, D // 2)
