"""The protocol every trainable model follows, so one host loop runs them all.

A Program describes ONE experiment as pure functions. The trainer vmaps them over
the sweep axis S and runs `step` inside `lax.scan` under one `jit`:

    init(key, hp, data) -> state                 the train state (below)
    step(state, hp, data) -> (state, metrics)    one optimisation step
    evaluate(state, hp, data) -> metrics         scalars or small vectors

`hp` holds traced float scalars ("lr", "weight_decay", "init_scale", "dropout");
`data` holds this experiment's arrays (padded to the sweep's largest graph).

The train state of every family: {"params", "opt_state" (the optimizer's; {} for plain
gradient steps), "key", "step", "diverged_at" (−1, or the step whose loss was not finite)}.
`step` ends with `guarded_update`, and `evaluate` reports "diverged_at", so a run that goes
NaN is flagged (summary.json, the CLI table) whatever the model.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class Program(NamedTuple):
    init: Callable[..., Any]
    step: Callable[..., Any]
    evaluate: Callable[..., Any]


def initial_state(params, opt_state, key) -> dict:
    """The train state at step 0, not diverged."""
    return {"params": params, "opt_state": opt_state, "key": key, "step": jnp.zeros((), jnp.int32),
            "diverged_at": jnp.full((), -1, jnp.int32)}


def guarded_update(state, params, opt_state, key, loss):
    """The next state, unless the loss is not finite: then this experiment freezes where it was
    and records the step it diverged at (the other experiments of the sweep go on)."""
    ok = jnp.isfinite(loss) & (state["diverged_at"] < 0)
    keep = lambda new, old: jax.tree_util.tree_map(lambda n, o: jnp.where(ok, n, o), new, old)
    return {
        "params": keep(params, state["params"]),
        "opt_state": keep(opt_state, state["opt_state"]),
        "key": key,
        "step": state["step"] + 1,
        "diverged_at": jnp.where((state["diverged_at"] < 0) & ~jnp.isfinite(loss), state["step"], state["diverged_at"]),
    }
