"""The base config: every key an experiment can set, with its default, meaning and allowed values.

Config files under `configs/` start from `base_config()` and override what they need; the
README's "Keys" table says the same in prose. Importable without jax (config files and the CLI's
flag parsing read it before any backend starts).

Who reads a key, in brackets where not every run does:
  [seq]         the sequence models, Transformer and Mamba, in both task modes
  [transformer] / [mamba] / [node2vec]   only that `model.family`
  [in_weights]  the sequence models on a fixed graph (`task.mode=in_weights`)
  [in_context]  the sequence models on fresh graphs (`task.mode=in_context`)
Every key is type- and range-checked for every run (`config.check_config`), so a bad value never
waits for a family switch. Node2Vec refuses the sequence-model keys it would ignore unless they
hold their neutral value (`config.NODE2VEC_NEUTRAL`); the other unread keys are ignored.
"""

from __future__ import annotations

import ml_collections


def base_config() -> ml_collections.ConfigDict:
    """Defaults shared by every experiment; config files override what they need. (Long on purpose:
    one commented line per key, grouped by section.)"""
    c = ml_collections.ConfigDict()
    c.name = "run"  # run name: the default workdir is runs/NAME[-PRESET][-HASH]

    # Graph: [in_weights] and [node2vec] build it; [in_context] reads only degree and path_length.
    c.graph = dict(
        family="path_star",  # path_star | tree_star | cycle | grid | irregular (the fixed 16-node graph)
        degree=10,  # star/tree-star: the root's number of arms d >= 1; [in_context]: d of each G(d, ℓ)
        path_length=5,  # star/tree-star: nodes per root-to-leaf path ℓ >= 2, root included
        branching=2,  # tree_star: children k >= 2 of every node below the root
        rows=4,  # grid: rows >= 1
        cols=4,  # grid: columns >= 1
        num_nodes=15,  # cycle: length >= 3
        seed=0,  # star/tree-star: node-id permutation and leaf split, >= 0 (not the training seed)
        edges="both",  # training edge directions: both | forward | backward ([node2vec] walks both ways)
        self_edges=False,  # also train u→u edges (and pick the self-edge release dataset)
        train_fraction=0.75,  # star/tree-star: share of leaves whose paths are trained on, in (0, 1)
        holdout="leaf",  # tree_star split: leaf (random leaves) | subtree (whole subtrees of the root)
        release_dir="",  # non-empty: read the graph and split from release-format files there instead
    )
    # Task (sequence format): [in_weights] reads all; [in_context] only mode, teacherless, num_values.
    c.task = dict(
        mode="in_weights",  # in_weights (one graph memorised) | in_context (a fresh labelled G(d, ℓ) per row)
        pause_tokens=1,  # p pause tokens after the leaf, in [0, 1024]
        target="full_path",  # full_path | hardest_token (only n1, the node after the root)
        task_tokens=True,  # start every row with an [EDGE] / [PATH] task token
        reverse_path=False,  # target path leaf-to-root (refused with hardest_token)
        teacherless=False,  # target inputs replaced by `$` (no teacher forcing of the path)
        root_in_prefix=False,  # the root goes in the prefix instead of the target
        pause_in_edges=False,  # pause tokens in edge rows too
        num_values=0,  # [in_context]: node labels to draw from, >= nodes of one G(d, ℓ); 0 = 2N
    )
    c.model = dict(
        family="transformer",  # transformer | mamba | node2vec
        layers=2,  # [seq] blocks, >= 1
        width=128,  # hidden size D, >= 1 ([node2vec]: the embedding dimension)
        heads=4,  # [transformer] attention heads, a divisor of width
        attention=True,  # [transformer] ablation: attention sublayers on
        residual=True,  # [seq] ablation: residual connections on
        layernorm=True,  # [seq] ablation: LayerNorms on
        positions=True,  # [transformer] ablation: learned absolute positions on (Mamba has none)
        tied=True,  # output layer = token table ([node2vec]: U = V; sgns is always untied)
        freeze_embeddings=False,  # [seq] token table held fixed: the associative control
        mlp_only=False,  # [transformer] each block one linear D×D map (1 layer, no residual/LN/positions: E W Eᵀ)
        init="default",  # [seq] tables N(0, 0.02²) (default) | N(0, 1) (non_geometric); node2vec: N(0, 1)
        init_scale=0.0,  # table init std, >= 0; 0: the `init` default (swept by sweep.init_scale)
        position_std=1.0,  # [transformer] std of the positions, > 0 (release 1.0; in-context needs 0.02)
        dropout=0.0,  # [seq] rate in [0, 1) on embeddings and block outputs ([node2vec]: must be 0)
        d_state=16,  # [mamba] SSM state size N, >= 1
        d_conv=4,  # [mamba] causal conv kernel width, >= 1
        expand=2,  # [mamba] inner width E = expand · width, >= 1
        dtype="float32",  # [seq] compute dtype: float32 | bfloat16 (params stay float32; [node2vec]: float32)
        node2vec_objective="full_softmax",  # [node2vec] full_softmax (plain GD, the paper) | sgns (walks, Adam)
        walk_length=10,  # [node2vec] sgns: nodes per random walk, >= 1
        walks_per_node=4,  # [node2vec] sgns: walks started at each node per step, >= 1
        window=3,  # [node2vec] sgns: skip-gram context window, >= 1
        negatives=5,  # [node2vec] sgns: negative samples per positive pair, >= 1
        walk_p=1.0,  # [node2vec] sgns: return parameter p, > 0
        walk_q=1.0,  # [node2vec] sgns: in-out parameter q, > 0
    )
    c.train = dict(
        recipe="mixed",  # [in_weights] mixed (edges ∪ paths) | staged (edges, then paths) | edges (edges only)
        steps=1000,  # total optimiser steps, >= 1 (staged: both stages)
        batch_size=256,  # [seq] rows per step, >= 1 (mixed: >= 2)
        full_batch=False,  # [in_weights] every step takes the whole table (batch_size ignored)
        stage1_steps=0,  # [in_weights] staged: edge-stage steps, in (0, steps)
        stage1_lr=1e-2,  # [in_weights] staged: edge-stage peak lr, > 0 (fresh optimiser after it)
        batch_layout="by_kind",  # [in_weights] by_kind (per-kind sub-batches) | padded (the release's layout)
        mixing="uniform",  # [in_weights] mixed: uniform (Binomial edge count) | stratified (fixed proportions)
    )
    c.opt = dict(
        lr=1e-3,  # peak lr, > 0 (swept by sweep.lr; [node2vec]: constant step size)
        weight_decay=0.01,  # decoupled (PyTorch AdamW) decay on all params, >= 0 (swept by sweep.weight_decay)
        warmup_steps=100,  # [seq] linear warm-up steps, >= 0 ([node2vec]: must be 0)
        schedule="cosine",  # [seq] cosine (to lr · final_lr_fraction) | constant ([node2vec]: must be constant)
        final_lr_fraction=0.1,  # [seq] cosine: final lr / peak lr, in (0, 1]
        b1=0.9,  # [seq] AdamW β1, in [0, 1) ([node2vec] sgns: Adam at the defaults)
        b2=0.999,  # [seq] AdamW β2, in [0, 1)
        eps=1e-8,  # [seq] AdamW ε, > 0
    )
    c.eval = dict(
        every=250,  # evaluation interval in steps, >= 1 (also bounds the compiled chunk)
        node_chunk=512,  # [in_weights] edge queries per evaluation chunk, >= 1 (bounds memory)
        row_chunk=1024,  # [in_weights] rows per chunk of greedy decoding / teacher forcing, >= 1
    )
    c.ckpt = dict(
        every=0,  # checkpoint interval in steps, >= 0; 0 = at every evaluation
        max_to_keep=2,  # checkpoints kept, >= 1
    )
    c.mesh = dict(
        devices="1",  # 1 | all | N: shard the sweep axis over N devices (padded to a multiple)
    )
    c.logging = dict(
        tensorboard=False,  # also write TensorBoard events to WORKDIR/tb (needs tensorboardX)
        wandb=False,  # also log to Weights & Biases (needs wandb)
        wandb_project="geomem_jax",  # W&B project name, non-empty
        wandb_mode="offline",  # offline | online
    )
    c.sweep = dict(
        seeds=(0,),  # distinct seeds >= 0, vmapped: each seeds init, batches and dropout
        graphs=(),  # graph.* overrides to stack, e.g. ({'degree': 50}, {'degree': 100}); () = graph
        lr=(),  # opt.lr values; () = (opt.lr,)
        weight_decay=(),  # opt.weight_decay values; () = (opt.weight_decay,)
        init_scale=(),  # model.init_scale values; () = its default
        dropout=(),  # model.dropout values; () = (model.dropout,)
        mode="product",  # product (every combination of the axes) | zip (their i-th values together)
        vmap_group=0,  # experiments one vmap computes at once, >= 0; 0 = auto (2 on one CPU device)
    )
    return c
