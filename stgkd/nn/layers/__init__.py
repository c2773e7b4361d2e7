"""Building blocks shared by our models, one operator or layer family per module.

* :mod:`~stgkd.nn.layers.supports`: dense graph supports (diffusion, GCN) applied as ``S @ x``, and their
  edge lists for PyG;
* :mod:`~stgkd.nn.layers.edges`: sparse supports as edge lists, cost linear in sensors + edges;
* :mod:`~stgkd.nn.layers.adaptive`: Graph WaveNet's self-adaptive adjacency (dense);
* :mod:`~stgkd.nn.layers.lowrank`: a learned adjacency of rank ``r``, applied in ``O(N r d)``;
* :mod:`~stgkd.nn.layers.graph_conv`: diffusion and dense graph convolutions;
* :mod:`~stgkd.nn.layers.temporal_conv`: the gated dilated causal convolution of WaveNet;
* :mod:`~stgkd.nn.layers.norm`: batch norm over the channel axis;
* :mod:`~stgkd.nn.layers.recurrent`: a GRU's final state over many sequences, chunked on the CPU.

Graph convention (as :class:`~stgkd.data.TrafficData`): ``adj[i, j]`` is the weight of the edge
``i -> j`` (row = source, column = target); a support ``S`` is applied as ``out = S @ x`` over the node
axis, row ``m`` listing what node ``m`` aggregates. Tensor layouts are channels-last throughout:
``(B, T, N, C)`` sequences, ``(B, N, C)`` node states. Import names from their module.
"""
