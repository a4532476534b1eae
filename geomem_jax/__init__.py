"""geomem_jax: geometric vs associative memory of graphs in sequence models, in JAX."""

__version__ = "0.1.0"
