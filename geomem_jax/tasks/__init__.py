"""Token sequences: edge / path examples, padded sweep tables and the in-context generator.

Modules (every name is re-exported here, so ``geomem_jax.tasks.X`` works for all of them):
``examples`` (vocabulary, TaskSpec, edge and path examples), ``tables`` (build_task_tables),
``stacking`` (stack_tables, pad_to: sweep padding), ``in_context`` (the generator below).

Vocabulary (same layout as the PyTorch release so embeddings line up):
node ids ``0 .. N-1``, then the nine specials ``|  [PAUSE]  /  $  >  <  [PAD]  [EDGE]  [PATH]``
at ids ``N .. N+8``.

Examples are stored as shifted pairs: position ``t`` of ``inputs`` is scored against
``targets[t]`` with weight ``weights[t]``.  Every example is written as one full token
sequence ``seq`` and split into ``inputs = seq[:-1]``, ``targets = seq[1:]``, both padded
with ``[PAD]`` (weight 0) to the common length T.  Hence ``inputs[t+1] == targets[t]`` on
every scored position of a plain (non-teacherless) example except its last one, whose
target is never fed back (``inputs[t+1]`` is ``[PAD]`` there).  Padding a table to a
longer T later (``stack_tables``) gives exactly what building it at that T would.  Loss
weights are 1 only on the positions that predict a target token.

- edge ``(u, v)``: ``[EDGE] u [PAUSE]×p v`` (task token and pauses optional); the last
  position before ``v`` predicts ``v``.
- path ``r n1 … leaf``: prefix ``[PATH] leaf [PAUSE]×p [r]`` then the target
  (``r n1 … leaf``; ``n1 … leaf`` with the root in the prefix; reversed on request;
  only ``n1`` for the hardest-token target).  Teacherless inputs replace every target
  token fed back as input by ``$``.

In-context path-star (Bachmann & Nagarajan 2024) — public format
----------------------------------------------------------------
Node tokens are the values ``0 .. num_values-1``; the specials sit at
``num_values .. num_values+8`` in the order above.  One example, for a fresh path-star
with degree ``d`` and arms of ``ℓ-1`` nodes (``E = d·(ℓ-1)`` edges, each written
parent→child, i.e. directed away from the root), is the sequence::

    u_1 v_1 |  u_2 v_2 |  …  u_E v_E |  /  source goal  >  source n1 … goal

The edge list is in random order, ``source`` is the root, ``goal`` a uniformly drawn
leaf.  The prefix (``3E + 4`` tokens, ending with ``>``) is followed by the ``ℓ``-token
path, teacher-forced exactly like in-weights path examples: the ``>`` position predicts
``source``.  With ``teacherless=True`` the path tokens fed back as inputs become ``$``.
"""

from geomem_jax.tasks.examples import (
    SPECIAL_TOKENS,
    TARGETS,
    Examples,
    TaskSpec,
    edge_examples,
    edge_prefix_length,
    path_examples,
    prefix_length,
    special_id,
    target_length,
    task_spec_from_config,
    vocab_size,
)
from geomem_jax.tasks.stacking import StackedTables, pad_to, stack_tables
from geomem_jax.tasks.tables import TaskTables, build_task_tables

# The generator is the only part that imports jax: loaded on first use, so that the numpy-only
# analysis stage can read the vocabulary from here.
_IN_CONTEXT = ("_check_in_context", "decode_in_context", "in_context_batch", "in_context_prefix_length",
               "in_context_source_children")


def __getattr__(name):
    if name in _IN_CONTEXT:
        from geomem_jax.tasks import in_context

        return getattr(in_context, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SPECIAL_TOKENS", "TARGETS", "Examples", "StackedTables", "TaskSpec", "TaskTables", "build_task_tables",
    "decode_in_context", "edge_examples", "edge_prefix_length", "in_context_batch", "in_context_prefix_length",
    "in_context_source_children", "pad_to", "path_examples", "prefix_length", "special_id", "stack_tables",
    "target_length", "task_spec_from_config", "vocab_size",
]
