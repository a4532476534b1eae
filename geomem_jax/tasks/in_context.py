"""The in-context path-star generator (Bachmann & Nagarajan 2024; format: the geomem_jax.tasks
docstring): in_context_batch draws fresh labelled path-stars as Examples inside jit, with its
argument check, prefix length, the source's children of each row and a decoder of one example.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from geomem_jax.errors import ConfigError
from geomem_jax.tasks.examples import SPECIAL_TOKENS, Examples

# ---------------------------------------------------------------------------- in-context


def in_context_prefix_length(degree: int, path_length: int) -> int:
    """Tokens before the path: ``3·E`` edge tokens then ``/ source goal >``."""
    return 3 * degree * (path_length - 1) + 4


def _check_in_context(degree, path_length, num_values):
    if isinstance(degree, bool) or not isinstance(degree, (int, np.integer)) or degree < 1:
        raise ConfigError("graph.degree", degree, "an integer >= 1")
    if isinstance(path_length, bool) or not isinstance(path_length, (int, np.integer)) or path_length < 2:
        raise ConfigError("graph.path_length", path_length, "an integer >= 2")
    num_nodes = degree * (path_length - 1) + 1
    if isinstance(num_values, bool) or not isinstance(num_values, (int, np.integer)) or num_values < num_nodes:
        raise ConfigError("task.num_values", num_values,
                          f"an integer >= {num_nodes} (the nodes of one G({degree}, {path_length}))")


def _in_context_example(key, degree: int, path_length: int, num_values: int, teacherless: bool):
    arm = path_length - 1
    num_edges = degree * arm
    # Structural node index: root 0, node j (1-based) of arm a is 1 + a*arm + (j-1).
    child_E = np.arange(1, num_edges + 1)
    parent_E = np.where((child_E - 1) % arm == 0, 0, child_E - 1)
    # One draw of random bits serves both shuffles (argsort of 32-bit keys; ties have
    # probability ~n²/2^33 and only bias the order between the tied pair). Cheaper to
    # compile than two jax.random.permutation calls.
    key_bits, key_goal = jax.random.split(key)
    bits = jax.random.bits(key_bits, (num_values + num_edges,), jnp.uint32)
    labels_n = jnp.argsort(bits[:num_values])[:num_edges + 1].astype(jnp.int32)
    order_E = jnp.argsort(bits[num_values:])
    bar = jnp.full((num_edges,), num_values + SPECIAL_TOKENS.index("|"), jnp.int32)
    edge_tokens = jnp.stack([labels_n[parent_E][order_E], labels_n[child_E][order_E], bar], axis=1)
    goal_arm = jax.random.randint(key_goal, (), 0, degree)
    path_L = labels_n[jnp.concatenate([jnp.zeros((1,), jnp.int32),
                                       1 + goal_arm * arm + jnp.arange(arm, dtype=jnp.int32)])]
    sid = lambda name: jnp.full((1,), num_values + SPECIAL_TOKENS.index(name), jnp.int32)
    seq_S = jnp.concatenate([edge_tokens.reshape(-1), sid("/"), path_L[:1], path_L[-1:], sid(">"), path_L])
    p = in_context_prefix_length(degree, path_length)
    pos_T = jnp.arange(seq_S.shape[0] - 1)
    inputs_T = seq_S[:-1]
    if teacherless:
        inputs_T = jnp.where(pos_T >= p, num_values + SPECIAL_TOKENS.index("$"), inputs_T)
    weights_T = (pos_T >= p - 1).astype(jnp.float32)
    return Examples(inputs_T, seq_S[1:], weights_T)


@functools.partial(jax.jit, static_argnames=("batch_size", "degree", "path_length", "num_values",
                                              "teacherless"))
def _in_context_batch(key, batch_size, degree, path_length, num_values, teacherless):
    keys = jax.random.split(key, batch_size)
    return jax.vmap(lambda k: _in_context_example(k, degree, path_length, num_values, teacherless))(keys)


def in_context_batch(key, batch_size: int, degree: int, path_length: int, num_values: int,
                     teacherless: bool = False) -> Examples:
    """``batch_size`` fresh labelled path-stars as Examples of shape (B, 3E+3+ℓ) (format: the package docstring).

    Everything but ``key`` is static; the call works inside jit and vmap (over keys).
    Vocabulary size is ``num_values + 9``.
    """
    _check_in_context(degree, path_length, num_values)
    return _in_context_batch(key, batch_size=int(batch_size), degree=int(degree),
                             path_length=int(path_length), num_values=int(num_values),
                             teacherless=bool(teacherless))


def in_context_source_children(inputs_NxT, source_N, degree: int, path_length: int):
    """Each row's edge-list children and which of them hang off its source (the first decision's options).

    Returns ``(children_NxE, from_source_NxE)``: the ``v`` of every ``u v |`` triple in the prefix and
    whether its ``u`` is ``source_N``; exactly ``degree`` entries per row are True.
    """
    num_edges = degree * (path_length - 1)
    triples_NxEx3 = inputs_NxT[:, :3 * num_edges].reshape(inputs_NxT.shape[0], num_edges, 3)
    return triples_NxEx3[..., 1], triples_NxEx3[..., 0] == source_N[:, None]


def decode_in_context(example: Examples, num_values: int):
    """Parse one in-context example (1-D fields) into (edges_Ex2, source, goal, path_L) numpy values.

    The full sequence is recovered from ``inputs[0]`` and the targets, so teacherless
    examples decode too; ``path_L`` are the weighted target tokens.
    """
    inputs_T, targets_T, weights_T = (np.asarray(x) for x in example)
    seq_S = np.concatenate([inputs_T[:1], targets_T])
    sep = num_values + SPECIAL_TOKENS.index("/")
    bar = num_values + SPECIAL_TOKENS.index("|")
    slash = int(np.flatnonzero(seq_S == sep)[0])
    triples_Ex3 = seq_S[:slash].reshape(-1, 3)
    if not np.all(triples_Ex3[:, 2] == bar):
        raise ValueError("edge list is not a sequence of `u v |` triples")
    source, goal = int(seq_S[slash + 1]), int(seq_S[slash + 2])
    if seq_S[slash + 3] != num_values + SPECIAL_TOKENS.index(">"):
        raise ValueError("query is not followed by `>`")
    path_L = targets_T[weights_T > 0]
    return triples_Ex3[:, :2].astype(np.int64), source, goal, path_L.astype(np.int64)
