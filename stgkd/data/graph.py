"""Sensor graphs: adjacency construction and the normalisations the models use.

Pure functions. Dense adjacencies are ``(N, N)`` with ``adj[i, j]`` the weight of the edge
``i -> j`` (row = source, column = target), as DCRNN's ``adj_mx.pkl``. Construction functions take
and return numpy; :func:`sym_norm_adj`, :func:`random_walk` and :func:`transition_matrices` also
accept a torch tensor and then return one (same dtype and device).

Aggregating along edges: a message-passing step in which node ``j`` sums over its in-neighbours
``i`` is ``X' = M^T X`` for a row = source matrix ``M`` (DCRNN's cell multiplies by
``P_f^T`` and ``P_b^T``; Graph WaveNet's ``einsum('ncvl,vw->ncwl')`` does the same).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import eigsh

from stgkd.errors import DataError

__all__ = [
    "gaussian_kernel_adjacency",
    "kernel_sigma",
    "sym_norm_adj",
    "random_walk",
    "transition_matrices",
    "scaled_laplacian",
    "to_edge_index",
    "graph_info",
]

DENSE_EIG_MAX_NODES = 1000  # above this, scaled_laplacian uses sparse eigsh


def _square(adj: Any, what: str = "adj") -> np.ndarray:
    arr = np.asarray(adj, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise DataError(f"{what} must be a square (N, N) matrix, got shape {arr.shape}")
    return arr


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


# --------------------------------------------------------------------------- construction


def kernel_sigma(dist: Any) -> float:
    """DCRNN's default width of the Gaussian kernel: the standard deviation of the finite distances
    (``inf`` / NaN = no road). ``0`` when they are all equal (one road, or roads of one length).

    Raises:
        DataError: no finite distance.
    """
    d = np.asarray(dist, dtype=np.float64)
    finite = d[np.isfinite(d)]
    if finite.size == 0:
        raise DataError("kernel_sigma: dist holds no finite distance")
    return float(finite.std())


def gaussian_kernel_adjacency(dist: Any, sigma: float | None = None, threshold: float = 0.1) -> np.ndarray:
    """DCRNN's thresholded Gaussian kernel: ``w_ij = exp(-(d_ij / sigma)^2)``, ``w_ij < threshold -> 0``.

    Args:
        dist: ``(N, N)`` distances, ``inf`` (or NaN) where there is no road. The diagonal follows
            the given distances (DCRNN's files list ``d_ii = 0``, hence a unit diagonal).
        sigma: kernel width (default: :func:`kernel_sigma`, the std of the finite distances, as DCRNN).
        threshold: weights below it are dropped (DCRNN's ``normalized_k``) (default: ``0.1``).

    Returns:
        ``(N, N)`` float32 adjacency.
    """
    d = _square(dist, "gaussian_kernel_adjacency: dist")
    d = np.where(np.isnan(d), np.inf, d)
    if (d < 0).any():
        raise DataError("gaussian_kernel_adjacency: dist holds negative distances")
    default = sigma is None
    if default:
        sigma = kernel_sigma(d)
    if not sigma > 0:
        why = " (the std of the distances: they are all equal); pass sigma=" if default else ""
        raise DataError(f"gaussian_kernel_adjacency: sigma must be positive, got {sigma}{why}")
    with np.errstate(over="ignore"):
        adj = np.exp(-np.square(d / sigma))
    adj[adj < threshold] = 0.0
    return adj.astype(np.float32)


# --------------------------------------------------------------------------- normalisations


def _inv(deg: Any, power: float) -> Any:
    """``deg ** power`` with zero degrees mapped to ``0`` (numpy or torch)."""
    if _is_torch(deg):
        import torch

        out = deg.clamp_min(0).pow(power)
        return torch.where(deg > 0, out, torch.zeros_like(out))
    with np.errstate(divide="ignore"):
        out = np.power(np.clip(deg, 0, None), power)
    return np.where(deg > 0, out, 0.0)


def sym_norm_adj(adj: Any, add_self_loops: bool = True) -> Any:
    """Kipf & Welling's GCN normalisation ``D^-1/2 (A + I) D^-1/2``, ``D`` = row sums of ``A + I``.

    Used as ``X' = Â X`` (node ``i`` averages the rows of its out-neighbours). For a symmetric
    ``A`` this equals PyG's ``gcn_norm`` densified; for a directed one it is the transpose of
    ``gcn_norm`` applied to ``A^T`` (PyG normalises by in-degree and aggregates along edges).
    Zero-degree nodes get zero rows and columns.
    """
    if _is_torch(adj):
        import torch

        a = adj + torch.eye(adj.shape[0], dtype=adj.dtype, device=adj.device) if add_self_loops else adj
        d = _inv(a.sum(1), -0.5)
        return d[:, None] * a * d[None, :]
    a = _square(adj, "sym_norm_adj: adj")
    if add_self_loops:
        a = a + np.eye(a.shape[0])
    d = _inv(a.sum(1), -0.5)
    return (d[:, None] * a * d[None, :]).astype(np.float32)


def random_walk(adj: Any) -> Any:
    """Row-normalised transition matrix ``D_out^-1 A``; rows of zero out-degree stay zero."""
    if _is_torch(adj):
        return _inv(adj.sum(1), -1.0)[:, None] * adj
    a = _square(adj, "random_walk: adj")
    return (_inv(a.sum(1), -1.0)[:, None] * a).astype(np.float32)


def transition_matrices(adj: Any) -> tuple[Any, Any]:
    """DCRNN / Graph WaveNet's diffusion supports ``(P_f, P_b) = (D_out^-1 A, D_in^-1 A^T)``."""
    return random_walk(adj), random_walk(adj.T)


def scaled_laplacian(adj: Any, lambda_max: float | None = None, undirected: bool = True) -> np.ndarray:
    """ChebNet / STGCN's ``L~ = 2 L / lambda_max - I`` with ``L = I - D^-1/2 A D^-1/2``.

    Args:
        adj: ``(N, N)`` weighted adjacency.
        lambda_max: largest eigenvalue of ``L`` (default: computed, dense ``eigvalsh`` up to
            1000 nodes, sparse ``eigsh`` above).
        undirected: symmetrise with ``max(A, A^T)`` first, as DCRNN's
            ``calculate_scaled_laplacian`` (default: ``True``); otherwise the largest real part of
            the (non-symmetric) spectrum is used.
    """
    a = _square(adj, "scaled_laplacian: adj")
    if undirected:
        a = np.maximum(a, a.T)
    n = a.shape[0]
    d = _inv(a.sum(1), -0.5)
    lap = np.eye(n) - d[:, None] * a * d[None, :]
    if lambda_max is None:
        if undirected and n > DENSE_EIG_MAX_NODES:
            lambda_max = float(eigsh(sp.csr_matrix(lap), k=1, which="LA", return_eigenvectors=False)[0])
        elif undirected:
            lambda_max = float(np.linalg.eigvalsh(lap)[-1])
        else:
            lambda_max = float(np.linalg.eigvals(lap).real.max())
    if not lambda_max > 0:
        raise DataError(f"scaled_laplacian: lambda_max must be positive, got {lambda_max} (graph without edges?)")
    return (2.0 / lambda_max * lap - np.eye(n)).astype(np.float32)


# --------------------------------------------------------------------------- conversions


def to_edge_index(adj: Any):
    """PyG's sparse form of a dense adjacency: ``(edge_index (2, E) long, edge_weight (E,) float32)``.

    ``edge_index[0]`` are sources (rows), ``edge_index[1]`` targets, in row-major order.
    """
    import torch

    a = adj.detach().cpu().numpy() if _is_torch(adj) else np.asarray(adj)
    a = _square(a, "to_edge_index: adj")
    rows, cols = np.nonzero(a)
    edge_index = torch.from_numpy(np.stack([rows, cols]).astype(np.int64))
    return edge_index, torch.from_numpy(a[rows, cols].astype(np.float32))


def _stats(x: np.ndarray) -> dict[str, float]:
    return {"min": float(x.min()), "mean": float(x.mean()), "max": float(x.max())}


def graph_info(adj: Any) -> dict[str, Any]:
    """Summary of a dense adjacency, for ``stgkd data info`` and sanity checks.

    Returns:
        ``nodes``, ``edges`` (non-zero off-diagonal entries), ``self_loops``, ``density``
        (edges / (N (N - 1))), ``symmetric``, ``weakly_connected_components``,
        ``strongly_connected_components``, ``largest_weak_component``, ``isolated_nodes`` (no edge
        in or out, self-loops aside), ``in_degree`` / ``out_degree`` (``min``/``mean``/``max`` of
        edge counts), ``weight`` (``min``/``mean``/``max`` of off-diagonal non-zero weights).
    """
    a = _square(adj.detach().cpu().numpy() if _is_torch(adj) else adj, "graph_info: adj")
    n = a.shape[0]
    off = (a != 0) & ~np.eye(n, dtype=bool)
    csr = sp.csr_matrix(off)
    n_weak, weak_labels = connected_components(csr, directed=True, connection="weak")
    n_strong, _ = connected_components(csr, directed=True, connection="strong")
    out_deg = off.sum(1)
    in_deg = off.sum(0)
    weights = a[off]
    edges = int(off.sum())
    return {
        "nodes": n,
        "edges": edges,
        "self_loops": int(np.count_nonzero(np.diag(a))),
        "density": edges / (n * (n - 1)) if n > 1 else 0.0,
        "symmetric": bool(np.allclose(a, a.T)),
        "weakly_connected_components": int(n_weak),
        "strongly_connected_components": int(n_strong),
        "largest_weak_component": int(np.bincount(weak_labels).max()) if n else 0,
        "isolated_nodes": int(((out_deg + in_deg) == 0).sum()),
        "in_degree": _stats(in_deg) if n else {},
        "out_degree": _stats(out_deg) if n else {},
        "weight": _stats(weights) if weights.size else {"min": 0.0, "mean": 0.0, "max": 0.0},
    }

