"""Node2Vec on the tiny graphs: one tied table, full-softmax 1-hop objective, plain GD.

    geomem train --config=configs/node2vec.py:cycle --workdir=runs/n2v_cycle && geomem analyze --workdir=runs/n2v_cycle
    geomem train --config=configs/node2vec.py:star --config.model.node2vec_objective=sgns --workdir=runs/n2v_sgns

Presets: star (G(4,5)), grid (R(4,4)), cycle (C(15)), irregular, smoke. The paper's
defaults: m = 100, init N(0, 1), lr 0.01, 10,000 full-batch steps, no weight decay.
"""

from geomem_jax.config import base_config

GRAPHS = {
    "star": dict(family="path_star", degree=4, path_length=5),
    "grid": dict(family="grid", rows=4, cols=4),
    "cycle": dict(family="cycle", num_nodes=15),
    "irregular": dict(family="irregular"),
}
PRESETS = (*GRAPHS, "smoke")


def get_config(arg=None):
    c = base_config()
    arg = arg or "cycle"
    c.name = f"node2vec_{arg}"
    for key, value in GRAPHS["cycle" if arg == "smoke" else arg].items():
        c.graph[key] = value
    c.model.family = "node2vec"
    c.model.width = 100
    c.model.init = "non_geometric"  # N(0, 1)
    c.train.steps = 10_000
    c.train.full_batch = True
    c.opt.lr, c.opt.weight_decay, c.opt.warmup_steps, c.opt.schedule = 1e-2, 0.0, 0, "constant"
    c.eval.every = 1000
    c.sweep.seeds = tuple(range(8))
    if arg == "smoke":
        c.train.steps, c.eval.every = 200, 100
        c.sweep.seeds = (0, 1)
    return c
