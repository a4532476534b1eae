"""The tiny-graph model zoo of the paper: edge memorization only, full batch.

Presets are `<graph>_<model>[_self_edges]` with graph in {star, grid, cycle, irregular}
and model in {transformer, transformer_forward, neural_net, associative,
associative_fast, mamba, node2vec}; settings (width / lr / steps) follow the release.

    geomem train --config=configs/tiny_graphs.py:cycle_neural_net --workdir=runs/cycle_nn
    geomem zoo --workdir=runs/zoo --seeds=8          # every preset, one comparison report
"""

from geomem_jax.config import base_config

GRAPHS = {
    "star": dict(family="path_star", degree=4, path_length=5),
    "grid": dict(family="grid", rows=4, cols=4),
    "cycle": dict(family="cycle", num_nodes=15),
    "irregular": dict(family="irregular"),
}
MODELS = ("transformer", "transformer_forward", "neural_net", "associative", "associative_fast", "mamba", "node2vec")
# (width, lr, steps) per model and graph, from the release; extra opt overrides after.
SETTINGS = {
    "transformer": {"star": (32, 1e-2, 500), "grid": (32, 1e-2, 500), "cycle": (32, 1e-2, 700),
                    "irregular": (32, 1e-2, 2500)},
    "transformer_forward": {"star": (32, 1e-2, 500), "grid": (32, 1e-2, 1000), "cycle": (32, 1e-2, 700),
                            "irregular": (48, 1e-2, 2000)},
    "neural_net": {"star": (32, 1e-2, 500), "grid": (32, 1e-2, 500), "cycle": (512, 1e-2, 10_000),
                   "irregular": (16, 5e-3, 1000)},
    "associative": {"star": (32, 0.2, 500), "grid": (32, 0.2, 500), "cycle": (15, 10.0, 5000),
                    "irregular": (16, 2.0, 500)},
    "associative_fast": {g: (512, 0.1, 10) for g in GRAPHS},
    "mamba": {"star": (32, 1e-2, 500), "grid": (32, 1e-2, 500), "cycle": (32, 1e-2, 700),
              "irregular": (32, 1e-2, 2500)},
    "node2vec": {g: (100, 1e-2, 10_000) for g in GRAPHS},
}
PRESETS = tuple(f"{g}_{m}{s}" for g in GRAPHS for m in MODELS for s in ("", "_self_edges")) + ("smoke",)


def parse_preset(arg: str) -> tuple[str, str, bool]:
    self_edges = arg.endswith("_self_edges")
    stem = arg[: -len("_self_edges")] if self_edges else arg
    graph, _, model = stem.partition("_")
    return graph, model, self_edges


def get_config(arg=None):
    arg = arg or "cycle_neural_net"
    graph, model, self_edges = parse_preset("cycle_transformer" if arg == "smoke" else arg)
    width, lr, steps = SETTINGS[model][graph]
    c = base_config()
    c.name = f"tiny_{arg}"
    for key, value in GRAPHS[graph].items():
        c.graph[key] = value
    c.graph.self_edges = self_edges
    c.train.recipe, c.train.full_batch, c.train.steps = "edges", True, steps
    c.opt.lr, c.opt.weight_decay, c.opt.warmup_steps, c.opt.schedule = lr, 0.0, 0, "cosine"
    c.model.width, c.model.layers, c.model.heads = width, 1, 1
    c.eval.every = max(steps // 5, 1)
    c.sweep.seeds = (0, 1, 2, 3)
    if model == "transformer_forward":
        c.graph.edges = "forward"
    if model in ("neural_net", "associative", "associative_fast"):
        # logits = E W E^T: one linear D x D map between the tied tables, nothing else.
        c.model.mlp_only, c.model.residual, c.model.layernorm = True, False, False
        c.model.positions, c.model.attention = False, False
        c.model.freeze_embeddings = model != "neural_net"
        c.task.task_tokens = False  # input is just `u`
    if model == "neural_net" and graph == "cycle":
        c.opt.schedule = "constant"
    if model == "associative_fast" and graph in ("cycle", "irregular"):
        c.opt.weight_decay = 1e-3
    if model == "mamba":
        c.model.family = "mamba"
    if model == "node2vec":
        c.model.family, c.model.init = "node2vec", "non_geometric"
        c.opt.schedule = "constant"
        c.eval.every = 1000
    if arg == "smoke":
        c.train.steps, c.eval.every = 40, 20
        c.sweep.seeds = (0, 1)
    return c
