"""The scale ladder: how far in-weights path-finding on a path-star goes with graph size.

Every rung of a ladder is one entry of `sweep.graphs`, so a whole ladder is ONE padded program
(every graph padded to the largest), with the same model, optimiser and steps at every rung:

    geomem train --config=configs/scaling.py:degree --workdir=runs/scale_degree   # d in 100..2000, l = 5
    geomem train --config=configs/scaling.py:length --workdir=runs/scale_length   # l in 4..8, d = 200

Presets:
  degree         G(d, 5), d in {100, 200, 500, 1000, 2000}; the quick start's model and recipe
                 (1 x 64 Transformer, hardest-token target, 1 pause, lr 1e-2 cosine, weight decay 1)
  length         G(200, l), l in {4, 5, 6, 8}; the same model and recipe
  paper_degree   accelerators: GPT-mid (12 x 384, 8 heads), the paper's recipe, d up to 10^4
  paper_length   accelerators: GPT-mid, G(1000, l), l in {4, 6, 8, 10}, pauses = l
  smoke          two tiny rungs, a few steps (the test suite)
Chance for the first decision is 1/d (the arms out of the root); `geomem analyze` names the
largest rung that works (docs/ANALYSIS.md, "Scale ladder").
"""

from geomem_jax.config import load_config

PRESETS = ("degree", "length", "paper_degree", "paper_length", "smoke")
DEGREES = (100, 200, 500, 1000, 2000)
LENGTHS = (4, 5, 6, 8)
PAPER_DEGREES = (1000, 2000, 5000, 10_000)
PAPER_LENGTHS = (4, 6, 8, 10)


def get_config(arg=None):
    arg = arg or "degree"
    if arg.startswith("paper"):  # GPT-mid and the paper's recipe (configs/pathstar.py:g10000_l6); pauses = l
        c = load_config("configs/pathstar.py:g10000_l6")
        c.task.target, c.sweep.seeds = "hardest_token", (0, 1, 2, 3)  # the CPU ladder's task, continued
    else:  # the quick start's model and recipe (configs/quickstart.py), held fixed at every rung
        c = load_config("configs/quickstart.py")
        c.train.steps, c.eval.every = 5000, 500  # both CPU ladders in <= 45 min on 2 cores
        c.train.mixing = "uniform"  # the recipe's own draws (docs/SCALING.md was measured with them)
    c.name = f"scaling_{arg}"
    if arg == "degree":
        c.graph.degree, c.graph.path_length = DEGREES[0], 5
        c.sweep.graphs = tuple({"degree": d} for d in DEGREES)
    elif arg == "length":
        c.graph.degree, c.graph.path_length = 200, LENGTHS[0]
        c.sweep.graphs = tuple({"path_length": length} for length in LENGTHS)
    elif arg == "paper_degree":
        c.graph.degree, c.graph.path_length, c.task.pause_tokens = PAPER_DEGREES[0], 6, 6
        c.sweep.graphs = tuple({"degree": d} for d in PAPER_DEGREES)
    elif arg == "paper_length":
        c.graph.degree, c.graph.path_length = 1000, PAPER_LENGTHS[0]
        c.task.pause_tokens = max(PAPER_LENGTHS)  # one program: the longest rung's pauses
        c.sweep.graphs = tuple({"path_length": length} for length in PAPER_LENGTHS)
    else:  # smoke
        c.graph.degree, c.graph.path_length = 4, 3
        c.sweep.graphs = ({"degree": 4}, {"degree": 8})
        c.model.width = 32
        c.train.steps, c.train.batch_size, c.opt.warmup_steps = 40, 32, 5
        c.eval.every = 20
        c.sweep.seeds = (0, 1)
    return c
