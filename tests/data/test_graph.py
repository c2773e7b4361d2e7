import math

import numpy as np
import pytest
import torch

from stgkd.data import graph as G
from stgkd.errors import DataError

# 0 -> 1 (1), 1 -> 2 (2), 2 -> 0 (1), 2 -> 3 (1); node 3 has no out-edge
A = np.array([[0, 1, 0, 0], [0, 0, 2, 0], [1, 0, 0, 1], [0, 0, 0, 0]], dtype=np.float32)


def test_gaussian_kernel_by_hand():
    inf = np.inf
    dist = np.array([[0, 1, inf], [2, 0, 3], [inf, inf, 0]])
    # finite distances 0,1,2,0,3,0: std = sqrt(4/3); w(1) = exp(-3/4), w(2) = exp(-3) < 0.1 dropped
    expected = np.array([[1, math.exp(-0.75), 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    np.testing.assert_allclose(G.gaussian_kernel_adjacency(dist), expected, rtol=1e-6)
    # explicit sigma, lower threshold keeps exp(-(2/2)^2) and exp(-(3/2)^2)
    got = G.gaussian_kernel_adjacency(dist, sigma=2.0, threshold=0.05)
    assert got[1, 0] == pytest.approx(math.exp(-1)) and got[1, 2] == pytest.approx(math.exp(-2.25))
    with pytest.raises(DataError, match="negative"):
        G.gaussian_kernel_adjacency(-np.ones((2, 2)))
    with pytest.raises(DataError, match="square"):
        G.gaussian_kernel_adjacency(np.ones((2, 3)))


def test_kernel_sigma_is_the_std_of_the_finite_distances_and_zero_names_the_way_out():
    inf = np.inf
    dist = np.array([[0, 1, inf], [2, 0, 3], [inf, np.nan, 0]])
    assert G.kernel_sigma(dist) == pytest.approx(math.sqrt(4 / 3))  # of 0, 1, 2, 0, 3, 0
    equal = np.array([[inf, 2.0], [2.0, inf]])
    assert G.kernel_sigma(equal) == 0.0
    with pytest.raises(DataError, match=r"sigma must be positive, got 0\.0 \(the std of the distances: they are all equal\); pass sigma="):
        G.gaussian_kernel_adjacency(equal)
    np.testing.assert_allclose(G.gaussian_kernel_adjacency(equal, sigma=2.0), [[0, math.exp(-1)], [math.exp(-1), 0]], rtol=1e-6)
    with pytest.raises(DataError, match="no finite distance"):
        G.kernel_sigma(np.full((2, 2), inf))


def test_transition_matrices_by_hand():
    pf, pb = G.transition_matrices(A)
    np.testing.assert_allclose(pf, [[0, 1, 0, 0], [0, 0, 1, 0], [0.5, 0, 0, 0.5], [0, 0, 0, 0]])
    np.testing.assert_allclose(pb, [[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]])
    tf, tb = G.transition_matrices(torch.from_numpy(A))
    assert torch.allclose(tf, torch.from_numpy(pf)) and torch.allclose(tb, torch.from_numpy(pb))


def test_sym_norm_by_hand_and_vs_pyg():
    s2, s3 = math.sqrt(2), math.sqrt(3)
    # row sums of A + I: 2, 3, 3, 1
    expected = np.array([
        [1 / 2, 1 / (s2 * s3), 0, 0],
        [0, 1 / 3, 2 / 3, 0],
        [1 / (s3 * s2), 0, 1 / 3, 1 / s3],
        [0, 0, 0, 1],
    ])
    np.testing.assert_allclose(G.sym_norm_adj(A), expected, rtol=1e-6)
    assert torch.allclose(G.sym_norm_adj(torch.from_numpy(A)), torch.from_numpy(expected).float())
    no_loops = G.sym_norm_adj(A, add_self_loops=False)
    assert no_loops[3].sum() == 0 and no_loops[:, 3].sum() == 0  # zero-degree node stays zero

    from torch_geometric.nn.conv.gcn_conv import gcn_norm
    from torch_geometric.utils import to_dense_adj

    rng = np.random.default_rng(0)
    w = rng.uniform(0.2, 1.0, (6, 6)) * (rng.random((6, 6)) < 0.5)
    np.fill_diagonal(w, 0)
    sym = np.maximum(w, w.T).astype(np.float32)
    ei, ew = G.to_edge_index(sym)
    ei_n, ew_n = gcn_norm(ei, ew, num_nodes=6, add_self_loops=True)
    dense = to_dense_adj(ei_n, edge_attr=ew_n, max_num_nodes=6)[0]
    assert torch.allclose(dense, torch.from_numpy(G.sym_norm_adj(sym)), atol=1e-6)
    # directed: PyG normalises by in-degree, so gcn_norm(A^T) densified is our result transposed
    directed = w.astype(np.float32)
    ei, ew = G.to_edge_index(directed.T)
    ei_n, ew_n = gcn_norm(ei, ew, num_nodes=6, add_self_loops=True)
    dense = to_dense_adj(ei_n, edge_attr=ew_n, max_num_nodes=6)[0]
    assert torch.allclose(dense.T, torch.from_numpy(G.sym_norm_adj(directed)), atol=1e-6)


def test_scaled_laplacian(monkeypatch):
    path = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=np.float32)
    # normalised Laplacian of P3 has spectrum {0, 1, 2}: L~ = L - I = -D^-1/2 A D^-1/2
    h = 1 / math.sqrt(2)
    np.testing.assert_allclose(G.scaled_laplacian(path), [[0, -h, 0], [-h, 0, -h], [0, -h, 0]], atol=1e-6)
    np.testing.assert_allclose(G.scaled_laplacian(np.triu(path)), G.scaled_laplacian(path), atol=1e-6)
    rng = np.random.default_rng(1)
    w = rng.random((8, 8)) * (rng.random((8, 8)) < 0.4)
    dense = G.scaled_laplacian(w)
    monkeypatch.setattr(G, "DENSE_EIG_MAX_NODES", 2)  # force scipy.sparse.linalg.eigsh
    np.testing.assert_allclose(G.scaled_laplacian(w), dense, atol=1e-5)
    assert np.linalg.eigvalsh(dense.astype(np.float64)).max() == pytest.approx(1.0, abs=1e-5)


def test_edge_index():
    ei, ew = G.to_edge_index(A)
    assert ei.tolist() == [[0, 1, 2, 2], [1, 2, 0, 3]] and ew.tolist() == [1, 2, 1, 1]
    assert ei.dtype == torch.long and ew.dtype == torch.float32
    ei_t, _ = G.to_edge_index(torch.from_numpy(A))
    assert torch.equal(ei, ei_t)


def test_graph_info():
    info = G.graph_info(A)
    assert info["nodes"] == 4 and info["edges"] == 4 and info["self_loops"] == 0
    assert info["weakly_connected_components"] == 1
    assert info["strongly_connected_components"] == 2  # {0, 1, 2} and {3}
    assert info["out_degree"] == {"min": 0.0, "mean": 1.0, "max": 2.0}
    assert info["in_degree"] == {"min": 1.0, "mean": 1.0, "max": 1.0}
    assert info["symmetric"] is False and info["density"] == pytest.approx(4 / 12)
    bigger = np.zeros((5, 5), dtype=np.float32)
    bigger[:4, :4] = A + np.eye(4)
    info = G.graph_info(bigger)
    assert info["isolated_nodes"] == 1 and info["weakly_connected_components"] == 2
    assert info["self_loops"] == 4 and info["largest_weak_component"] == 4
