"""Like-for-like: geomem's jitted training step vs the same step written in PyTorch, on the same CPU.

    python bench/bench_torch_step.py       # writes bench/results/torch_step.{json,md}

The step-bench model (`common.BENCH_MODEL`, the release's 2 x 128 CPU Transformer on
configs/pathstar.py:cpu's task) at batch 1024 (G(100, 5), full path,
sequences of 7 tokens, vocabulary 410): 2 pre-LN blocks of width 128, 4 heads, causal
attention with biased q/k/v/out projections, GELU (tanh) MLP 4x, learned positions,
final LayerNorm, tied input/output table; masked weighted cross-entropy on a random
batch of 1024 rows of the same token table; AdamW (lr from the warm-up/cosine
schedule, weight decay 0.01). PyTorch steps the release's padded rows with logits at every
position, as the release does; geomem its default `train.batch_layout=by_kind` (an edge
sub-batch at length 2 and a path sub-batch at length 7, logits only where the loss reads them:
the same row distribution and loss). geomem runs one experiment as it does in `geomem train`:
jit(vmap(scan(step))) over chunks of steps, state donated. PyTorch runs eager
(the usual way to write it), one optimizer step per Python iteration, with
F.scaled_dot_product_attention. Not counted on the torch side: geomem's NaN guard
(one select over the parameters per step).

torch is not a dependency of geomem_jax. Without it the result says so; with it
(e.g. `pip install torch` into a separate directory put on PYTHONPATH for this run
only) the ratio is measured.
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import sys
import time

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from common import pathstar_cpu_setup, timeit, write  # noqa: E402

from geomem_jax import loop  # noqa: E402

COMMAND = "python bench/bench_torch_step.py"
STEPS = 10  # steps per timed chunk
REPEATS = 5


def time_geomem(chunk, state, hp, data) -> tuple[dict, dict]:
    """Seconds per step of the compiled chunk; returns the advanced state (the input one is donated)."""
    holder = [state]
    t0 = time.perf_counter()
    holder[0] = chunk(holder[0], hp, data)[0]
    jax.block_until_ready(holder[0])
    first_s = time.perf_counter() - t0

    def run():
        holder[0] = chunk(holder[0], hp, data)[0]
        jax.block_until_ready(holder[0])

    return {"s_per_step": timeit(run, REPEATS) / STEPS, "first_chunk_s": first_s}, holder[0]


def torch_model(torch, vocab: int, max_len: int, width: int, layers: int, heads: int):
    nn, F = torch.nn, torch.nn.functional

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(width, eps=1e-6), nn.LayerNorm(width, eps=1e-6)
            self.qkv, self.out = nn.Linear(width, 3 * width), nn.Linear(width, width)
            self.mlp_in, self.mlp_out = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

        def forward(self, h):
            b, t, d = h.shape
            q, k, v = self.qkv(self.ln1(h)).view(b, t, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
            att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            h = h + self.out(att.transpose(1, 2).reshape(b, t, d))
            return h + self.mlp_out(F.gelu(self.mlp_in(self.ln2(h)), approximate="tanh"))

    class Transformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Parameter(torch.randn(vocab, width))
            self.positions = nn.Parameter(torch.randn(max_len, width))
            self.blocks = nn.ModuleList(Block() for _ in range(layers))
            self.ln_f = nn.LayerNorm(width, eps=1e-6)
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, std=0.02)
                    nn.init.zeros_(m.bias)
            with torch.no_grad():
                self.embed.mul_(0.02)  # geomem's default init scale of the token table

        def forward(self, tokens):
            h = self.embed[tokens] + self.positions[: tokens.shape[1]]
            for block in self.blocks:
                h = block(h)
            return self.ln_f(h) @ self.embed.T  # tied output table

    return Transformer()


def time_torch(torch, cfg, dims, data_np: dict, batch: int) -> dict:
    torch.manual_seed(0)
    model = torch_model(torch, dims.vocab_size, dims.seq_len + dims.target_len, cfg.model.width,
                        cfg.model.layers, cfg.model.heads)
    opt_cfg = cfg.opt
    opt = torch.optim.AdamW(model.parameters(), lr=opt_cfg.lr, betas=(opt_cfg.b1, opt_cfg.b2), eps=opt_cfg.eps,
                            weight_decay=opt_cfg.weight_decay)
    inputs = torch.from_numpy(np.asarray(data_np["train_inputs"][0], np.int64))
    targets = torch.from_numpy(np.asarray(data_np["train_targets"][0], np.int64))
    weights = torch.from_numpy(np.asarray(data_np["train_weights"][0], np.float32))
    vocab_mask = torch.from_numpy(np.asarray(data_np["vocab_mask"][0]))
    rows = int(data_np["train_rows"][0])
    step = [0]

    def lr_at(s):  # the same warm-up + cosine schedule as geomem_jax.train.lr_at
        warm, total, final = opt_cfg.warmup_steps, cfg.train.steps, opt_cfg.final_lr_fraction
        if s < warm:
            return opt_cfg.lr * min(1.0, (s + 1) / max(warm, 1))
        progress = min(max((s - warm) / max(total - warm, 1), 0.0), 1.0)
        return opt_cfg.lr * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress)))

    def one_step():
        idx = torch.randint(0, rows, (batch,))
        x, y, w = inputs[idx], targets[idx], weights[idx]
        logits = model(x).masked_fill(~vocab_mask, -1e9)
        nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none")
        loss = (nll * w.reshape(-1)).sum() / w.sum().clamp(min=1.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for group in opt.param_groups:
            group["lr"] = lr_at(step[0])
        opt.step()
        step[0] += 1
        return loss

    def run():
        for _ in range(STEPS):
            loss = one_step()
        float(loss)

    t0 = time.perf_counter()
    run()  # warm-up (allocator, kernels)
    first_s = time.perf_counter() - t0
    return {"s_per_step": timeit(run, REPEATS) / STEPS, "first_chunk_s": first_s,
            "threads": torch.get_num_threads(), "version": torch.__version__}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--no-write", action="store_true", help="print only (quick checks)")
    args = parser.parse_args(argv)
    command = " ".join([COMMAND, *(sys.argv[1:] if argv is None else argv)])
    load_at_start = os.getloadavg()[0]
    try:
        import torch
    except ImportError:
        torch = None
    if torch is None:
        result = {"torch_installed": False, "loadavg_1m_at_start": load_at_start}
        md = ("PyTorch is not installed, so there is no like-for-like ratio. torch is not a dependency of "
              "geomem_jax; install it separately (e.g. `pip install --target /tmp/torch_site torch` and "
              "`PYTHONPATH=/tmp/torch_site python bench/bench_torch_step.py`) to measure it.")
        if not args.no_write:
            write("torch_step", result, md, command)
        print(md)
        return

    cfg, dims, program, state, hp, data = pathstar_cpu_setup(args.batch)
    # PyTorch steps the release's layout (every row padded to the path length, logits everywhere),
    # as the release's own trainer does; geomem its default per-kind layout (bench_layout.py
    # compares the two layouts inside geomem).
    padded = pathstar_cpu_setup(args.batch, overrides=(("train.batch_layout", "padded"),))[-1]
    data_np = {k: np.asarray(v) for k, v in padded.items()}
    # geomem then torch, twice, keeping the faster of each: a shared machine's load spikes hit one pair, not both.
    chunk = loop.jit_chunk(program, STEPS)
    runs = []
    for _ in range(2):
        jax_r, state = time_geomem(chunk, state, hp, data)
        time.sleep(0.5)  # let torch's / XLA's worker threads go idle before the other side runs
        torch_r = time_torch(torch, cfg, dims, data_np, args.batch)
        time.sleep(0.5)
        runs.append((jax_r, torch_r))
    jax_s = min(r[0]["s_per_step"] for r in runs)
    torch_s = min(r[1]["s_per_step"] for r in runs)
    ratio = torch_s / jax_s
    result = {
        "torch_installed": True, "torch_version": torch.__version__, "torch_threads": runs[0][1]["threads"],
        "batch": args.batch, "seq_len": dims.seq_len, "vocab": dims.vocab_size,
        "width": cfg.model.width, "layers": cfg.model.layers, "heads": cfg.model.heads,
        "geomem_s_per_step": jax_s, "torch_s_per_step": torch_s, "torch_over_geomem": ratio,
        "geomem_compile_and_first_chunk_s": runs[0][0]["first_chunk_s"],
        "runs": [{"geomem_s_per_step": j["s_per_step"], "torch_s_per_step": t["s_per_step"]} for j, t in runs],
        "loadavg_1m_at_start": load_at_start, "loadavg_1m_at_end": os.getloadavg()[0],
    }
    faster = "geomem (JAX)" if ratio > 1 else "PyTorch"
    md = [
        f"Training step of the release's CPU Transformer (BENCH_MODEL: {cfg.model.layers} × {cfg.model.width}, "
        f"{cfg.model.heads} heads, batch {args.batch}, sequence {dims.seq_len}, vocabulary {dims.vocab_size}), "
        f"AdamW, one experiment, same CPU. geomem: jit(vmap(scan)) chunks of {STEPS} steps; PyTorch "
        f"{torch.__version__} eager with {runs[0][1]['threads']} threads. Best of 2 alternating rounds, each the "
        f"median of {REPEATS} × {STEPS} steps.\n",
        "| | s / step | examples / s |", "|---|---|---|",
        f"| geomem_jax (jax {jax.__version__}) | {jax_s * 1e3:.1f} ms | {args.batch / jax_s:.0f} |",
        f"| PyTorch eager | {torch_s * 1e3:.1f} ms | {args.batch / torch_s:.0f} |",
        "",
        f"**PyTorch time / geomem time = {ratio:.2f}** ({faster} is faster per step).",
        "",
        f"Load average (1 min): {load_at_start:.2f} at the start, {result['loadavg_1m_at_end']:.2f} at the end. "
        "torch was installed only for this measurement; it is not a dependency of geomem_jax.",
    ]
    if not args.no_write:
        write("torch_step", result, "\n".join(md), command)
    print("\n".join(md))


if __name__ == "__main__":
    main()
