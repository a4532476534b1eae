"""The protocol every trainable model follows, so one host loop runs them all.

A Program describes ONE experiment as pure functions. The trainer vmaps them over
the sweep axis S and runs `step` inside `lax.scan` under one `jit`:

    init(key, hp, data) -> state                 state: dict pytree with "params"
    step(state, hp, data) -> (state, metrics)    one optimisation step
    evaluate(state, hp, data) -> metrics         scalars or small vectors

`hp` holds traced float scalars ("lr", "weight_decay", "init_scale", "dropout");
`data` holds this experiment's arrays (padded to the sweep's largest graph).
"""

from collections.abc import Callable
from typing import Any, NamedTuple


class Program(NamedTuple):
    init: Callable[..., Any]
    step: Callable[..., Any]
    evaluate: Callable[..., Any]
