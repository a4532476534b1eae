"""Sweep padding: stack_tables stacks the TaskTables of S experiments (graphs of any sizes, one
TaskSpec) on a leading axis as StackedTables, padding every table to common shapes with each
experiment's own [PAD] id and zero weights or False masks; pad_to pads one array.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from geomem_jax.tasks.examples import SPECIAL_TOKENS, Examples, special_id, vocab_size
from geomem_jax.tasks.tables import TaskTables

# ---------------------------------------------------------------------------- sweep padding


def pad_to(x, shape, value) -> np.ndarray:
    """``x`` padded at the end of every axis with ``value`` up to ``shape`` (never cropped)."""
    x = np.asarray(x)
    if x.ndim != len(shape) or any(a > b for a, b in zip(x.shape, shape)):
        raise ValueError(f"cannot pad array of shape {x.shape} to {tuple(shape)}")
    out = np.full(tuple(shape), value, dtype=x.dtype)
    out[tuple(slice(0, a) for a in x.shape)] = x
    return out


def _stack_padded(arrays, shape, fills, dtype) -> np.ndarray:
    """(S, *shape) array: experiment i's array in the leading corner, ``fills[i]`` elsewhere."""
    out = np.empty((len(arrays), *shape), dtype=dtype)
    for i, (x, fill) in enumerate(zip(arrays, fills)):
        corner = np.shape(x)
        out[i][tuple(slice(0, a) for a in corner)] = x
        # Fill only the padding (each byte written once: these tables reach 100s of MB).
        for axis, a in enumerate(corner):
            region = tuple(slice(0, c) for c in corner[:axis]) + (slice(a, None),)
            out[i][region] = fill
    return out


class StackedTables(NamedTuple):
    """Task tables of S experiments stacked on a leading axis, padded to common shapes.

    Each experiment keeps its own token ids (specials at N_i..N_i+8); the stacked
    vocabulary is V = max N_i + 9 and ``vocab_mask_SxV`` marks the ids that exist.
    Padded rows hold the experiment's own [PAD] id with weight 0.
    """

    train_inputs_SxRxT: np.ndarray
    train_targets_SxRxT: np.ndarray
    train_weights_SxRxT: np.ndarray
    train_rows_S: np.ndarray
    edge_inputs_SxExT: np.ndarray
    edge_targets_SxExT: np.ndarray
    edge_weights_SxExT: np.ndarray
    edge_rows_S: np.ndarray
    train_path_inputs_SxPxT: np.ndarray
    train_path_targets_SxPxT: np.ndarray
    train_path_weights_SxPxT: np.ndarray
    train_path_rows_S: np.ndarray
    test_path_inputs_SxQxT: np.ndarray
    test_path_targets_SxQxT: np.ndarray
    test_path_weights_SxQxT: np.ndarray
    test_path_rows_S: np.ndarray
    test_prefix_SxQxP: np.ndarray
    test_targets_SxQxL: np.ndarray
    test_target_mask_SxQxL: np.ndarray
    test_row_mask_SxQ: np.ndarray
    train_prefix_SxPxP: np.ndarray
    train_targets_SxPxL: np.ndarray
    train_target_mask_SxPxL: np.ndarray
    train_row_mask_SxP: np.ndarray
    vocab_mask_SxV: np.ndarray
    num_nodes_S: np.ndarray
    pad_id_S: np.ndarray
    path_length_S: np.ndarray
    target_length_S: np.ndarray
    recall_src_SxK: np.ndarray  # every directed (u, v) successor pair, padded
    recall_dst_SxK: np.ndarray
    recall_mask_SxK: np.ndarray
    out_degree_SxN: np.ndarray  # 0 on padded nodes
    node_mask_SxN: np.ndarray
    edge_prefix_SxNxPe: np.ndarray  # edge query for every node (padded nodes: [PAD])
    # The by-kind layout: edge examples at their own length Pe, scored at their last position only.
    edge_query_SxExPe: np.ndarray  # int32 `[EDGE] u [PAUSE]*`
    edge_next_SxE: np.ndarray  # int32 v


def _stack_examples(examples: list[Examples], pad_ids, rows: int, length: int):
    zeros = [0] * len(examples)
    inputs = _stack_padded([ex.inputs_NxT for ex in examples], (rows, length), pad_ids, np.int32)
    targets = _stack_padded([ex.targets_NxT for ex in examples], (rows, length), pad_ids, np.int32)
    weights = _stack_padded([ex.weights_NxT for ex in examples], (rows, length), zeros, np.float32)
    row_counts_S = np.array([len(ex.inputs_NxT) for ex in examples], np.int32)
    return inputs, targets, weights, row_counts_S


def _stack_prompts(prefixes, targets, pad_ids, rows: int, prefix_len: int, target_len: int):
    falses = [False] * len(prefixes)
    prefix_SxQxP = _stack_padded(prefixes, (rows, prefix_len), pad_ids, np.int32)
    targets_SxQxL = _stack_padded(targets, (rows, target_len), pad_ids, np.int32)
    target_mask = _stack_padded([np.ones(x.shape, bool) for x in targets], (rows, target_len), falses, bool)
    row_mask = _stack_padded([np.ones(len(x), bool) for x in prefixes], (rows,), falses, bool)
    return prefix_SxQxP, targets_SxQxL, target_mask, row_mask


def stack_tables(tables: list[TaskTables]) -> StackedTables:
    """Stack the tables of S experiments (graphs of any sizes, one TaskSpec) on a leading axis."""
    if not tables:
        raise ValueError("stack_tables needs at least one TaskTables")
    prefix_lens = {t.prefix_length for t in tables}
    if len(prefix_lens) != 1:
        raise ValueError(f"experiments of one sweep must share the task spec; prefix lengths {prefix_lens}")
    p = prefix_lens.pop()
    pad_ids = [special_id(t.num_nodes, "[PAD]") for t in tables]
    n_max = max(t.num_nodes for t in tables)
    v = vocab_size(n_max)
    length = max(t.train.inputs_NxT.shape[1] for t in tables)
    rows = lambda xs: max(len(x) for x in xs)
    train = _stack_examples([t.train for t in tables], pad_ids, rows([t.train.inputs_NxT for t in tables]), length)
    edge = _stack_examples([t.edges for t in tables], pad_ids, rows([t.edges.inputs_NxT for t in tables]), length)
    trp = _stack_examples([t.train_paths for t in tables], pad_ids,
                          rows([t.train_paths.inputs_NxT for t in tables]), length)
    tep = _stack_examples([t.test_paths for t in tables], pad_ids,
                          rows([t.test_paths.inputs_NxT for t in tables]), length)
    l_max = max(t.target_length for t in tables)
    test = _stack_prompts([t.test_prefix_QxP for t in tables], [t.test_targets_QxL for t in tables],
                          pad_ids, rows([t.test_prefix_QxP for t in tables]), p, l_max)
    trainp = _stack_prompts([t.train_prefix_PxP for t in tables], [t.train_targets_PxL for t in tables],
                            pad_ids, rows([t.train_prefix_PxP for t in tables]), p, l_max)

    srcs = [np.repeat(np.arange(t.num_nodes), np.diff(t.succ_indptr_N1)) for t in tables]
    k_max = max(len(s) for s in srcs)
    zeros, falses = [0] * len(tables), [False] * len(tables)
    recall_src = _stack_padded(srcs, (k_max,), zeros, np.int32)
    recall_dst = _stack_padded([t.succ_indices_K for t in tables], (k_max,), zeros, np.int32)
    recall_mask = _stack_padded([np.ones(len(s), bool) for s in srcs], (k_max,), falses, bool)
    out_degree = _stack_padded([np.diff(t.succ_indptr_N1) for t in tables], (n_max,), zeros, np.int32)
    node_mask = _stack_padded([np.ones(t.num_nodes, bool) for t in tables], (n_max,), falses, bool)
    pe = tables[0].edge_prefix_NxPe.shape[1]
    edge_prefix = _stack_padded([t.edge_prefix_NxPe for t in tables], (n_max, pe), pad_ids, np.int32)
    num_nodes_S = np.array([t.num_nodes for t in tables], np.int32)
    return StackedTables(
        *train, *edge, *trp, *tep, *test, *trainp,
        vocab_mask_SxV=np.arange(v)[None, :] < (num_nodes_S[:, None] + len(SPECIAL_TOKENS)),
        num_nodes_S=num_nodes_S, pad_id_S=np.array(pad_ids, np.int32),
        path_length_S=np.array([t.path_length for t in tables], np.int32),
        target_length_S=np.array([t.target_length for t in tables], np.int32),
        recall_src_SxK=recall_src, recall_dst_SxK=recall_dst, recall_mask_SxK=recall_mask,
        out_degree_SxN=out_degree, node_mask_SxN=node_mask, edge_prefix_SxNxPe=edge_prefix,
        edge_query_SxExPe=np.ascontiguousarray(edge[0][:, :, :pe]), edge_next_SxE=edge[1][:, :, pe - 1].copy())
