"""The CPU default of `geomem run`: in-weights path-star, several seeds in one vmapped program.

    geomem run                       # this config
    geomem run --config.sweep.seeds="(0,1,2,3,4,5,6,7)"
"""

from geomem_jax.config import base_config

PRESETS = ("smoke",)


def get_config(arg=None):
    c = base_config()
    c.name = "quickstart"
    c.graph.family = "path_star"
    c.graph.degree, c.graph.path_length = 100, 5
    c.task.target = "hardest_token"
    c.task.pause_tokens = 1
    c.model.layers, c.model.width, c.model.heads = 2, 128, 4
    c.train.steps, c.train.batch_size = 2000, 256
    c.opt.lr, c.opt.warmup_steps, c.opt.schedule = 1e-3, 100, "constant"
    c.eval.every = 250
    c.sweep.seeds = (0, 1, 2, 3)
    if arg == "smoke":
        c.graph.degree = 8
        c.model.layers, c.model.width, c.model.heads = 1, 32, 2
        c.train.steps, c.train.batch_size = 40, 32
        c.eval.every = 20
        c.sweep.seeds = (0, 1)
    return c
