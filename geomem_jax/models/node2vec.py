"""Node2Vec as pure, vmappable JAX: the analysable model of the paper (docs/ANALYSIS.md).

Two objectives share one `Program` (see `geomem_jax.program`):

* ``objective="full_softmax"`` (the paper's model). One tied table V ∈ ℝ^{N×m}
  (or, untied, inputs V and outputs U) and the 1-hop full-softmax objective

      J(V) = Σ_i (1/|nbr(i)|) Σ_{j∈nbr(i)} log softmax_j(V v_i),

  softmax over every valid node INCLUDING i itself; padded nodes get logit −∞
  and contribute no terms. Training is full-batch gradient ASCENT on J
  (``optimizer="gd"``: V ← V + lr ∇J, i.e. descent on −J), with decoupled weight
  decay V ← V − lr·wd·V. For the tied table ∇J = C V with
  C = (D⁻¹A − P) + (D⁻¹A − P)ᵀ, P = row_softmax(V Vᵀ) (`node2vec_gradient`).
  "train/loss" = −J / N_valid (mean per node).

* ``objective="sgns"`` (classic Node2Vec baseline, Grover & Leskovec 2016).
  Every step samples, inside jit, ``walks_per_node`` second-order walks from
  every valid node; a walk holds ``walk_length`` nodes including its start. From
  (prev, cur) the next node is a neighbour x of cur with unnormalised weight
  1/p if x == prev, 1 if x is a neighbour of prev, 1/q otherwise (the first hop
  is uniform). Skip-gram pairs are (w_t, w_{t+o}) and (w_{t+o}, w_t) for
  1 ≤ o ≤ ``window`` (both directions, pairs never cross walks). Each pair
  (c, o) adds −log σ(v_c·u_o) − Σ_{k=1..negatives} log σ(−v_c·u_{n_k}), with
  negatives drawn i.i.d. (with replacement, may hit o or c) from the degree
  unigram^0.75 distribution over valid nodes (word2vec's choice; ``neg_dist=
  "uniform"`` draws uniformly over valid nodes). The loss is the mean over
  pairs, so lr does not scale with walks_per_node. Tables are always untied as
  in word2vec: input V (the embedding that is analysed) and output U (init
  ``init_scale``·N(0,1) for both; word2vec's zero output init would make the
  first step degenerate for the tied-looking analysis). Optimizer: plain SGD
  (``"gd"``/``"sgd"``) or Adam (``"adam"``, optax, β=(0.9, 0.999)) on the
  mini-batch loss, lr = hp["lr"], decoupled weight decay as above.

Padding. Every array in `node2vec_data` is padded to the sweep's N_pad with a node
mask; tables are drawn with `rowwise_normal` so row i depends only on (key, i),
padded rows are zero and stay zero, and a padded run follows the same
trajectory as the unpadded one. The dense N_pad×N_pad matrices limit this module
to small graphs: the full-softmax objective refuses N_pad > 5000.

Evaluation (`Program.evaluate`, jittable): "node2vec/proj_V" = ‖Vᵀe_i‖ and
"node2vec/proj_C" = ‖C e_i‖ per eigenvector of M = D⁻¹A + (D⁻¹A)ᵀ (descending
eigenvalue; zeros in padded columns), "node2vec/alignment" = fraction of the
non-trivial energy Σ_{i≥1} ‖Vᵀe_i‖² carried by modes 1..align_k (the project's
scalar "how geometric" score, k = align_k, default 2), "edge/recall_at_5",
"geometry/level" (mean cos(V_u, V_v) over directed non-self edges) and
"train/loss". For the untied variant P and the recall scores use the model's
logits V Uᵀ; projections and geometric level use the input table V.
"""


import jax
import jax.numpy as jnp
import numpy as np
import optax

from geomem_jax import metric_names as names
from geomem_jax.errors import ConfigError
from geomem_jax.models.common import rowwise_normal
from geomem_jax.models.node2vec_walks import negative_logits, sample_walks, sgns_loss, skipgram_pairs
from geomem_jax.program import Program, guarded_update, initial_state

MAX_DENSE_NODES = 5000
_NEG = -1e30  # finite "−∞": exp underflows to 0 without NaN from 0·(−∞)

OBJECTIVES = ("full_softmax", "sgns")
OPTIMIZERS = ("gd", "sgd", "adam")


# ----------------------------------------------------------------------------- data


def _adjacency_dense(graph) -> np.ndarray:
    """Undirected 0/1 adjacency (N×N float64, no self loops) from any accepted graph form.

    Accepts a `geomem_jax.graphs.Graph` (``num_nodes`` + ``forward_edges_Ex2``),
    a ``(num_nodes, edges_Ex2)`` tuple, or a square dense adjacency array.
    """
    if hasattr(graph, "num_nodes") and hasattr(graph, "forward_edges_Ex2"):
        num_nodes, edges_Ex2 = int(graph.num_nodes), np.asarray(graph.forward_edges_Ex2)
    elif isinstance(graph, tuple) and len(graph) == 2:
        num_nodes, edges_Ex2 = int(graph[0]), np.asarray(graph[1])
    else:
        adj = np.asarray(graph, dtype=np.float64)
        if adj.ndim != 2 or adj.shape[0] != adj.shape[1]:
            raise ConfigError("graph", type(graph).__name__, "a Graph, (num_nodes, edges_Ex2) or a square adjacency")
        adj = ((adj + adj.T) > 0).astype(np.float64)
        np.fill_diagonal(adj, 0.0)
        return adj
    adj = np.zeros((num_nodes, num_nodes))
    edges_Ex2 = edges_Ex2.reshape(-1, 2).astype(np.int64)
    edges_Ex2 = edges_Ex2[edges_Ex2[:, 0] != edges_Ex2[:, 1]]
    adj[edges_Ex2[:, 0], edges_Ex2[:, 1]] = 1.0
    adj[edges_Ex2[:, 1], edges_Ex2[:, 0]] = 1.0
    return adj


def spectral_basis(walk_nxn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs of M = W + Wᵀ (W = D⁻¹A), eigenvalues descending;
    sign fixed so each column's largest |entry| is positive."""
    m_nxn = walk_nxn + walk_nxn.T
    eigvals_n, eigvecs_nxn = np.linalg.eigh(m_nxn)
    order = np.argsort(-eigvals_n, kind="stable")
    eigvals_n, eigvecs_nxn = eigvals_n[order], eigvecs_nxn[:, order]
    peak = eigvecs_nxn[np.argmax(np.abs(eigvecs_nxn), axis=0), np.arange(eigvecs_nxn.shape[1])]
    return eigvals_n, eigvecs_nxn * np.where(peak < 0, -1.0, 1.0)


def node2vec_data(graph, n_pad: int, num_eig: int | None = None, self_edges: bool = False,
                  d_max: int | None = None) -> dict[str, np.ndarray]:
    """Arrays for one Node2Vec experiment, padded to ``n_pad`` nodes.

    Returns walk_NxN (D⁻¹A, + self loops if ``self_edges``), adj_NxN (0/1, same
    edge set), node_mask_N, eigvecs_NxK / eigvals_K / eig_mask_K (eigenpairs of
    M = D⁻¹A + (D⁻¹A)ᵀ, descending, K = n_pad unless ``num_eig``), and for SGNS
    nbrs_NxDmax (neighbour ids, −1 padded) and deg_N. Every experiment of a sweep
    must share ``d_max`` (default: this graph's max degree) and ``num_eig``.
    """
    adj_nxn = _adjacency_dense(graph)
    n = adj_nxn.shape[0]
    if n_pad < n:
        raise ConfigError("n_pad", n_pad, f">= the graph's {n} nodes")
    if self_edges:
        adj_nxn = adj_nxn + np.eye(n)
    deg_n = adj_nxn.sum(axis=1)
    walk_nxn = adj_nxn / np.maximum(deg_n, 1.0)[:, None]  # isolated nodes: zero row, no terms
    eigvals_n, eigvecs_nxn = spectral_basis(walk_nxn)

    k = n_pad if num_eig is None else int(num_eig)
    if k < 1:
        raise ConfigError("num_eig", num_eig, "a positive integer or None")
    k_real = min(k, n)
    deg_max = int(deg_n.max()) if n else 0
    d_max = max(deg_max, 1) if d_max is None else int(d_max)
    if d_max < deg_max:
        raise ConfigError("d_max", d_max, f">= the graph's max degree {deg_max}")

    walk_NxN = np.zeros((n_pad, n_pad), np.float32)
    walk_NxN[:n, :n] = walk_nxn
    adj_NxN = np.zeros((n_pad, n_pad), np.float32)
    adj_NxN[:n, :n] = adj_nxn
    eigvecs_NxK = np.zeros((n_pad, k), np.float32)
    eigvecs_NxK[:n, :k_real] = eigvecs_nxn[:, :k_real]
    eigvals_K = np.zeros(k, np.float32)
    eigvals_K[:k_real] = eigvals_n[:k_real]
    nbrs_NxDmax = np.full((n_pad, d_max), -1, np.int32)
    for i in range(n):
        row = np.flatnonzero(adj_nxn[i])
        nbrs_NxDmax[i, : row.size] = row
    deg_N = np.zeros(n_pad, np.int32)
    deg_N[:n] = deg_n.astype(np.int32)
    return {
        "walk_NxN": walk_NxN,
        "adj_NxN": adj_NxN,
        "node_mask_N": np.arange(n_pad) < n,
        "eigvecs_NxK": eigvecs_NxK,
        "eigvals_K": eigvals_K,
        "eig_mask_K": np.arange(k) < k_real,
        "nbrs_NxDmax": nbrs_NxDmax,
        "deg_N": deg_N,
    }


# ------------------------------------------------------------------ full-softmax maths


def _masked_log_softmax(logits_NxN, node_mask_N):
    return jax.nn.log_softmax(jnp.where(node_mask_N[None, :], logits_NxN, _NEG), axis=-1)


def softmax_P(logits_NxN, node_mask_N):
    """P = row_softmax(logits) over valid columns; rows of padded nodes are zero."""
    p_NxN = jnp.exp(_masked_log_softmax(logits_NxN, node_mask_N))
    return p_NxN * node_mask_N[:, None]


def objective_logits(logits_NxN, walk_NxN, node_mask_N):
    """J = Σ_ij W_ij log softmax_j(logits_i); zero-weight (incl. padded) entries contribute nothing."""
    logp_NxN = _masked_log_softmax(logits_NxN, node_mask_N)
    return jnp.sum(jnp.where(walk_NxN > 0, walk_NxN * logp_NxN, 0.0))


def objective(V, walk_NxN, node_mask_N, U=None):
    """The paper's 1-hop full-softmax objective J(V) (tied) or J(V, U) with logits V Uᵀ."""
    return objective_logits(V @ (V if U is None else U).T, walk_NxN, node_mask_N)


def contrast_C(V, walk_NxN, node_mask_N, U=None):
    """C = (W − P) + (W − P)ᵀ with W = D⁻¹A and P = row_softmax(V Vᵀ) (or V Uᵀ), masked."""
    r_NxN = walk_NxN - softmax_P(V @ (V if U is None else U).T, node_mask_N)
    return r_NxN + r_NxN.T


def node2vec_gradient(V, walk_NxN, node_mask_N):
    """Closed-form ∇J(V) = C V for the tied table."""
    return contrast_C(V, walk_NxN, node_mask_N) @ V


# ------------------------------------------------------------------------ evaluation


def spectral_alignment(proj_K, eig_mask_K, total_energy, k: int = 2):
    """Fraction of non-trivial energy Σ_{i≥1} proj_i² carried by modes 1..k (mode 0 = trivial).

    ``total_energy`` = ‖V‖_F² = Σ_i proj_i² over ALL eigenvectors (they are an
    orthonormal basis of the real nodes and padded rows are zero), so the score is
    exact even when only the first K eigenvectors are stored (K ≥ k + 1).
    """
    e_K = jnp.where(eig_mask_K, proj_K**2, 0.0)
    return jnp.sum(e_K[1 : k + 1]) / jnp.maximum(total_energy - e_K[0], 1e-30)


def recall_at_5(scores_NxN, adj_NxN, node_mask_N):
    """Mean over valid nodes with neighbours of |top5 ∩ nbr| / min(5, |nbr|).

    Candidates are the other valid nodes; node i itself is a candidate only when
    it has a self loop (self_edges data).
    """
    n_pad = adj_NxN.shape[0]
    own_ok_N = jnp.diagonal(adj_NxN) > 0
    cand_NxN = node_mask_N[None, :] & (~jnp.eye(n_pad, dtype=bool) | own_ok_N[:, None])
    kk = min(5, n_pad)
    _, top_NxK = jax.lax.top_k(jnp.where(cand_NxN, scores_NxN, -jnp.inf), kk)
    hits_N = jnp.sum(jnp.take_along_axis(adj_NxN, top_NxK, axis=1) > 0, axis=1)
    deg_N = jnp.sum(adj_NxN > 0, axis=1)
    has_N = node_mask_N & (deg_N > 0)
    r_N = hits_N / jnp.maximum(jnp.minimum(kk, deg_N), 1)
    return jnp.sum(jnp.where(has_N, r_N, 0.0)) / jnp.maximum(jnp.sum(has_N), 1)


def geometric_level(V, adj_NxN):
    """Mean cos(V_u, V_v) over directed edges u→v, self loops excluded."""
    unit_NxM = V / jnp.maximum(jnp.linalg.norm(V, axis=1, keepdims=True), 1e-12)
    edge_NxN = (adj_NxN > 0) & ~jnp.eye(adj_NxN.shape[0], dtype=bool)
    cos_NxN = unit_NxM @ unit_NxM.T
    return jnp.sum(jnp.where(edge_NxN, cos_NxN, 0.0)) / jnp.maximum(jnp.sum(edge_NxN), 1)


# --------------------------------------------------------------------------- program


def make_node2vec_program(dim: int = 100, tied: bool = True, objective: str = "full_softmax",
                          optimizer: str = "gd", walk_length: int = 20, walks_per_node: int = 4,
                          window: int = 5, negatives: int = 5, p: float = 1.0, q: float = 1.0,
                          neg_dist: str = "unigram", align_k: int = 2,
                          track_every_eval: bool = True) -> Program:
    """Build the Node2Vec `Program` (see module docstring for semantics). Long on purpose: the
    option checks, then init / step / evaluate as closures over the static options (both objectives
    share them; as module functions each would take the dozen options as arguments).

    ``track_every_eval``: when True, evaluate also returns the K-vectors
    "node2vec/proj_V" and "node2vec/proj_C"; when False only scalars (cheaper logs).
    """
    if objective not in OBJECTIVES:
        raise ConfigError("model.node2vec_objective", objective, f"one of {OBJECTIVES}")
    if optimizer not in OPTIMIZERS:
        raise ConfigError("optimizer", optimizer, f"one of {OPTIMIZERS}")
    if neg_dist not in ("unigram", "uniform"):
        raise ConfigError("model.neg_dist", neg_dist, "one of ('unigram', 'uniform')")
    for name, val, lo in (("model.width (dim)", dim, 1), ("model.walk_length", walk_length, 2),
                          ("model.walks_per_node", walks_per_node, 1), ("model.window", window, 1),
                          ("model.negatives", negatives, 1), ("model.align_k", align_k, 1)):
        if int(val) != val or val < lo:
            raise ConfigError(name, val, f"an integer >= {lo}")
    if not (p > 0 and q > 0):
        raise ConfigError("model.p/q", (p, q), "positive floats")
    untied = (not tied) or objective == "sgns"
    adam = optax.adam(1.0)  # unit lr; the traced hp["lr"] is applied outside so it can be swept

    def _logits(params):
        V = params["V"]
        return V @ (params["U"] if untied else V).T

    def init(key, hp, data):
        node_mask_N = jnp.asarray(data["node_mask_N"])
        if objective == "full_softmax" and node_mask_N.shape[0] > MAX_DENSE_NODES:
            raise ConfigError("graph", f"N_pad={node_mask_N.shape[0]}",
                              f"<= {MAX_DENSE_NODES} nodes for the dense full-softmax Node2Vec")
        key_v, key_u, key_state = jax.random.split(key, 3)
        rows = (node_mask_N.shape[0], dim)
        scale_mask = hp["init_scale"] * node_mask_N[:, None]
        params = {"V": rowwise_normal(key_v, rows) * scale_mask}
        if untied:
            params["U"] = rowwise_normal(key_u, rows) * scale_mask
        return initial_state(params, adam.init(params) if optimizer == "adam" else {}, key_state)

    def _full_softmax_loss(params, data):
        # descent on −J; reported per valid node
        n_valid = jnp.maximum(jnp.sum(data["node_mask_N"]), 1)
        return -objective_logits(_logits(params), data["walk_NxN"], data["node_mask_N"]) / n_valid

    def _sgns_batch_loss(params, key, data):
        k_walk, k_neg = jax.random.split(key)
        walks_WxL, valid_W = sample_walks(k_walk, data["nbrs_NxDmax"], data["deg_N"], data["node_mask_N"],
                                          walks_per_node, walk_length, p, q)
        c_P, o_P, v_P = skipgram_pairs(walks_WxL, valid_W, window)
        neg_logw_N = negative_logits(data["deg_N"], data["node_mask_N"], neg_dist)
        neg_PxK = jax.random.categorical(k_neg, neg_logw_N, shape=(c_P.shape[0], negatives))
        return sgns_loss(params, c_P, o_P, v_P, neg_PxK)

    def step(state, hp, data):
        params = state["params"]
        key, sub = jax.random.split(state["key"])
        if objective == "full_softmax":
            loss, grads = jax.value_and_grad(_full_softmax_loss)(params, data)
            # gradient of −J/N_valid; the paper's update uses ∇J itself, so undo the 1/N
            n_valid = jnp.maximum(jnp.sum(data["node_mask_N"]), 1).astype(loss.dtype)
            grads = jax.tree.map(lambda g: g * n_valid, grads)
        else:
            loss, grads = jax.value_and_grad(_sgns_batch_loss)(params, sub, data)
        opt_state = state["opt_state"]
        if optimizer == "adam":
            direction, opt_state = adam.update(grads, opt_state, params)  # the descent direction at unit lr
        else:
            direction = jax.tree.map(lambda g: -g, grads)
        lr, wd = hp["lr"], hp["weight_decay"]
        params = jax.tree.map(lambda w, d: w + lr * d - lr * wd * w, params, direction)
        return guarded_update(state, params, opt_state, key, loss), {names.TRAIN_LOSS: loss}

    def evaluate(state, hp, data):
        params = state["params"]
        V = params["V"]
        node_mask_N = data["node_mask_N"]
        logits_NxN = _logits(params)
        r_NxN = data["walk_NxN"] - softmax_P(logits_NxN, node_mask_N)
        c_NxN = r_NxN + r_NxN.T
        eig_NxK, eig_mask_K = data["eigvecs_NxK"], data["eig_mask_K"]
        proj_V_K = jnp.linalg.norm(V.T @ eig_NxK, axis=0)
        proj_C_K = jnp.linalg.norm(c_NxN @ eig_NxK, axis=0)
        if objective == "full_softmax":
            loss = _full_softmax_loss(params, data)
        else:
            loss = _sgns_batch_loss(params, jax.random.fold_in(state["key"], 0x5EED), data)
        out = {
            "diverged_at": state["diverged_at"],
            names.TRAIN_LOSS: loss,
            names.RECALL_AT_5: recall_at_5(logits_NxN, data["adj_NxN"], node_mask_N),
            names.LEVEL: geometric_level(V, data["adj_NxN"]),
            names.NODE2VEC_ALIGNMENT: spectral_alignment(proj_V_K, eig_mask_K, jnp.sum(V * V), align_k),
        }
        if track_every_eval:
            out[names.NODE2VEC_PROJ_V] = proj_V_K
            out[names.NODE2VEC_PROJ_C] = proj_C_K
        return out

    return Program(init=init, step=step, evaluate=evaluate)


# ------------------------------------------------------------------ config → program


def max_degree(graph) -> int:
    """Largest undirected degree (no self loops): the shared ``d_max`` of a sweep is the max of these."""
    if hasattr(graph, "num_nodes") and hasattr(graph, "forward_edges_Ex2"):
        e = np.asarray(graph.forward_edges_Ex2).reshape(-1, 2)
        e = np.unique(np.sort(e[e[:, 0] != e[:, 1]], axis=1), axis=0)
        return int(np.bincount(e.ravel(), minlength=max(int(graph.num_nodes), 1)).max())
    return int(_adjacency_dense(graph).sum(1).max())


def program_for_config(cfg, graph_list, exps):
    """(Program, stacked data with leading axis S, table paths) for the host loop (`geomem_jax.loop`).

    Reads cfg.model: width (= dim m), tied, node2vec_objective, walk_length,
    walks_per_node, window, negatives, walk_p, walk_q; cfg.graph.self_edges.
    Optimizer: plain gradient ascent for "full_softmax" (the paper), Adam for
    "sgns"; lr is constant (`config.check_node2vec_keys` refuses a schedule, warm-up, dropout or
    dtype other than their neutral values). Eigenvectors
    stored: min(N_pad, 32) (alignment stays exact, see `spectral_alignment`).
    """
    m = cfg.model
    self_edges = bool(cfg.graph.self_edges)
    n_pad = max(g.num_nodes for g in graph_list)
    if m.node2vec_objective == "full_softmax" and n_pad > MAX_DENSE_NODES:
        raise ConfigError("graph", f"{n_pad} nodes", f"<= {MAX_DENSE_NODES} nodes for the dense full-softmax Node2Vec")
    d_max = max(max_degree(g) for g in graph_list) + int(self_edges)
    num_eig = min(n_pad, 32)
    per_graph = [node2vec_data(g, n_pad, num_eig=num_eig, self_edges=self_edges, d_max=max(d_max, 1))
                 for g in graph_list]
    stacked = {name: np.stack([per_graph[e.graph_index][name] for e in exps]) for name in per_graph[0]}
    objective_name = m.node2vec_objective
    program = make_node2vec_program(
        dim=int(m.width), tied=bool(m.tied), objective=objective_name,
        optimizer="gd" if objective_name == "full_softmax" else "adam",
        walk_length=int(m.walk_length), walks_per_node=int(m.walks_per_node), window=int(m.window),
        negatives=int(m.negatives), p=float(m.walk_p), q=float(m.walk_q),
    )
    untied = (not m.tied) or objective_name == "sgns"
    paths = {"embedding": ["params", "V"], "output_embedding": ["params", "U"] if untied else None,
             "bilinear": None}
    return program, stacked, paths
