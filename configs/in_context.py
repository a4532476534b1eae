"""The in-context path-star task of Bachmann & Nagarajan (2024): a fresh labelled G(d, ℓ) per example.

    geomem train --config=configs/in_context.py:cpu --workdir=runs/ic          # G(2, 5), ~3 min on 2 cores
    geomem train --config=configs/in_context.py:g10_l5 --workdir=runs/ic10     # paper sizes: accelerators

Next-token training learns the "Clever Hans" lookup (every node after n1 is read off the edge
list: teacher-forced accuracy 1.0) but the first decision n1 stays at chance 1/d; docs/IN_CONTEXT.md.

Presets:
  cpu               G(2, 5), 2 layers x 64, 2 heads, lr 1e-3, 2000 steps, batch 64, 4 seeds
  g2_l5, g10_l5, g20_l5   the paper's sizes with GPT-mid (12 x 384, 8 heads), 50k steps
  smoke             G(2, 4), seconds, for tests
"""

from geomem_jax.config import base_config

PRESETS = ("cpu", "g2_l5", "g10_l5", "g20_l5", "smoke")


def get_config(arg=None):
    arg = arg or "cpu"
    c = base_config()
    c.name = f"in_context_{arg}"
    c.task.mode, c.task.target = "in_context", "full_path"
    c.graph.family, c.graph.degree, c.graph.path_length = "path_star", 2, 5
    c.task.num_values = 0  # 2N node labels per example (N = nodes of one graph)
    # Positions N(0, 0.02²) like the token table: with the release's N(0, 1) positions the token
    # identity is drowned and the edge-list lookup is not learned within 4000 steps (docs/IN_CONTEXT.md).
    c.model.position_std = 0.02
    c.model.layers, c.model.width, c.model.heads = 2, 64, 2
    c.opt.lr, c.opt.weight_decay, c.opt.warmup_steps, c.opt.schedule = 1e-3, 0.01, 100, "cosine"
    c.train.steps, c.train.batch_size = 2000, 64
    c.eval.every, c.ckpt.every = 250, 1000
    c.sweep.seeds = (0, 1, 2, 3)
    if arg in ("g2_l5", "g10_l5", "g20_l5"):
        c.graph.degree = int(arg[1:].split("_")[0])
        c.model.layers, c.model.width, c.model.heads = 12, 384, 8
        c.opt.lr, c.opt.warmup_steps = 5e-4, 1000
        c.train.steps, c.train.batch_size = 50_000, 256
        c.eval.every, c.ckpt.every = 2500, 5000
    elif arg == "smoke":
        c.graph.path_length = 4
        c.model.width = 32
        c.train.steps, c.train.batch_size = 40, 16
        c.eval.every, c.ckpt.every = 20, 40
        c.sweep.seeds = (0, 1)
    return c
