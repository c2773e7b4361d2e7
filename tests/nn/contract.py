"""The contract every teacher and student passes.

Subclass :class:`ModelContract` once per model (and per interesting configuration), set ``name``
and small ``hparams``, and pytest runs every check below on it (as Optuna's
``testing/pytest_samplers.py`` runs every sampler through one suite)::

    from .contract import ModelContract

    class TestGRU(ModelContract):
        name = "gru"
        hparams = {"hidden": 16}

Models with per-node parameters (node embeddings) list them in ``node_params`` (state-dict key ->
node axis) so the permutation test can relabel them together with the graph.
"""

from __future__ import annotations

import copy
import inspect
import json
from typing import Any, ClassVar

import pytest
import torch
from torch import Tensor

import stgkd.nn  # noqa: F401  (registers every model)
from stgkd.nn import MODELS, ForecastModel, build, count_flops, from_config

CUDA = torch.cuda.is_available()


@pytest.fixture(autouse=True)
def single_thread():
    """Run on one intra-op thread: the test tensors are tiny, and on a busy machine two OpenMP
    threads waiting on each other at every op made a 0.4 s test take a minute. Restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def random_graph(num_nodes: int, seed: int = 0, density: float = 0.5) -> Tensor:
    """A directed, weighted, deliberately asymmetric test graph with unit diagonal (like METR-LA)."""
    gen = torch.Generator().manual_seed(seed)
    weights = torch.rand(num_nodes, num_nodes, generator=gen) * 0.9 + 0.1
    mask = torch.rand(num_nodes, num_nodes, generator=gen) < density
    adj = weights * mask
    adj.fill_diagonal_(1.0)
    return adj


def permute_feature(feature: Tensor, perm: Tensor) -> Tensor:
    """Relabel the node axis of a ``(B, N, D)`` or ``(B, T, N, D)`` feature."""
    return feature.index_select(feature.dim() - 2, perm)


class ModelContract:
    """Shared checks: shapes, features, backward, determinism, permutation equivariance, overfitting,
    config round trip, ``torch.compile``, bf16 autocast, CUDA and FLOP counting."""

    name: ClassVar[str] = ""
    hparams: ClassVar[dict[str, Any]] = {}
    num_nodes: ClassVar[int] = 6
    batch_size: ClassVar[int] = 3
    in_steps: ClassVar[int] = 12
    out_steps: ClassVar[int] = 12
    in_channels: ClassVar[int] = 2
    #: (in_steps, out_steps) of the "configurable horizon" check.
    other_steps: ClassVar[tuple[int, int]] = (10, 3)
    #: state-dict keys of per-node parameters -> their node axis (relabelled in the permutation test).
    node_params: ClassVar[dict[str, int]] = {}
    #: whether the forecast depends on the static graph (False e.g. for a learned-adjacency-only setting).
    graph_matters: ClassVar[bool] = True
    overfit_steps: ClassVar[int] = 60
    overfit_lr: ClassVar[float] = 3e-2
    overfit_factor: ClassVar[float] = 10.0
    #: run the torch.compile check (turn off for variants that add no new module types: it is slow).
    compile_check: ClassVar[bool] = True
    #: bf16 tolerance relative to the fp32 output's scale.
    bf16_rtol: ClassVar[float] = 0.1

    # ---------------------------------------------------------------- helpers and fixtures

    @pytest.fixture(autouse=True)
    def _single_thread(self):  # as ``single_thread``, without needing it imported into the module
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        yield
        torch.set_num_threads(before)

    def build(self, graph: Tensor | None, *, seed: int = 0, **overrides: Any) -> ForecastModel:
        torch.manual_seed(seed)
        kwargs = {
            "num_nodes": self.num_nodes,
            "in_steps": self.in_steps,
            "out_steps": self.out_steps,
            "in_channels": self.in_channels,
            **self.hparams,
            **overrides,
        }
        return build(self.name, graph=graph, **kwargs)

    @pytest.fixture
    def graph(self) -> Tensor:
        return random_graph(self.num_nodes)

    @pytest.fixture
    def x(self) -> Tensor:
        gen = torch.Generator().manual_seed(1)
        return torch.randn(self.batch_size, self.in_steps, self.num_nodes, self.in_channels, generator=gen)

    def _check_forecast(self, out: Tensor, batch: int | None = None, steps: int | None = None) -> None:
        batch = self.batch_size if batch is None else batch
        steps = self.out_steps if steps is None else steps
        assert out.shape == (batch, steps, self.num_nodes)
        assert torch.isfinite(out).all()

    # ---------------------------------------------------------------- declaration

    def test_declaration(self) -> None:
        cls = MODELS.get(self.name)
        assert issubclass(cls, ForecastModel)
        assert cls.registry_name == self.name
        assert cls.role in ("teacher", "student")
        assert isinstance(cls.uses_graph, bool)
        assert len(cls.feature_names) >= 1 and len(set(cls.feature_names)) == len(cls.feature_names)
        assert cls.distill_feature in cls.feature_names
        assert "Shapes:" in (cls.forward.__doc__ or ""), f"{cls.__name__}.forward docstring needs a Shapes: section"
        assert "Args:" in (cls.__doc__ or "") and "(default:" in (cls.__doc__ or "")
        params = inspect.signature(cls.__init__).parameters
        for hp in self.hparams:
            assert params[hp].kind is inspect.Parameter.KEYWORD_ONLY, f"{hp} must be keyword-only"

    def test_unknown_hparam_raises(self, graph: Tensor) -> None:
        with pytest.raises(TypeError):
            self.build(graph, not_a_hyperparameter=1)

    # ---------------------------------------------------------------- shapes and features

    def test_forecast_and_feature_shapes(self, graph: Tensor, x: Tensor) -> None:
        model = self.build(graph).eval()
        with torch.no_grad():
            out = model(x)
            out2, feats = model(x, return_features=True)
        self._check_forecast(out)
        assert torch.equal(out, out2)
        assert isinstance(feats, dict) and set(feats) == set(model.feature_names)
        for key, feat in feats.items():
            assert feat.dim() in (3, 4), f"feature {key!r} has shape {tuple(feat.shape)}"
            assert feat.shape[0] == self.batch_size and feat.shape[-2] == self.num_nodes, (key, feat.shape)
            assert torch.isfinite(feat).all(), key

    def test_configurable_steps(self, graph: Tensor) -> None:
        in_steps, out_steps = self.other_steps
        model = self.build(graph, in_steps=in_steps, out_steps=out_steps).eval()
        x = torch.randn(2, in_steps, self.num_nodes, self.in_channels)
        with torch.no_grad():
            self._check_forecast(model(x), batch=2, steps=out_steps)

    def test_wrong_input_shape_raises(self, graph: Tensor, x: Tensor) -> None:
        model = self.build(graph)
        with pytest.raises(ValueError, match="expects x of shape"):
            model(x[:, :, :-1])

    # ---------------------------------------------------------------- gradients and determinism

    def test_backward_reaches_every_parameter(self, graph: Tensor, x: Tensor) -> None:
        model = self.build(graph).train()
        out, feats = model(x, return_features=True)
        loss = out.square().mean() + sum(f.square().mean() for f in feats.values())
        loss.backward()
        nonzero = 0
        for pname, param in model.named_parameters():
            assert param.grad is not None, f"no gradient reaches {pname}"
            assert torch.isfinite(param.grad).all(), f"non-finite gradient in {pname}"
            nonzero += int(param.grad.abs().sum() > 0)
        assert nonzero >= len(list(model.parameters())) // 2

    def test_same_seed_same_model_and_output(self, graph: Tensor, x: Tensor) -> None:
        a, b = self.build(graph, seed=3), self.build(graph, seed=3)
        for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
            assert ka == kb and torch.equal(va, vb), ka
        torch.manual_seed(7)
        out_a = a.train()(x)
        torch.manual_seed(7)
        out_b = b.train()(x)
        assert torch.equal(out_a, out_b)
        c = self.build(graph, seed=4)
        assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))

    # ---------------------------------------------------------------- graph equivariance

    def test_node_permutation_equivariance(self, graph: Tensor, x: Tensor) -> None:
        """Relabelling the nodes (graph rows/columns, input nodes, per-node parameters) relabels
        every forecast and feature the same way."""
        perm = torch.randperm(self.num_nodes, generator=torch.Generator().manual_seed(5))
        assert not torch.equal(perm, torch.arange(self.num_nodes))
        permuted_graph = graph[perm][:, perm]
        model = self.build(graph, seed=11).eval()
        relabelled = self.build(permuted_graph, seed=11).eval()
        state = copy.deepcopy(model.state_dict())
        for key, axis in self.node_params.items():
            assert state[key].shape[axis] == self.num_nodes, (key, state[key].shape)
            state[key] = state[key].index_select(axis, perm)
        relabelled.load_state_dict(state)
        with torch.no_grad():
            out, feats = model(x, return_features=True)
            out_p, feats_p = relabelled(x[:, :, perm], return_features=True)
        torch.testing.assert_close(out_p, out[:, :, perm], rtol=1e-4, atol=1e-5)
        for key in feats:
            torch.testing.assert_close(feats_p[key], permute_feature(feats[key], perm), rtol=1e-4, atol=1e-5)
        # the check has teeth: leaving out either relabelling breaks the equality
        if model.uses_graph and self.graph_matters:
            stale = self.build(graph, seed=11).eval()  # relabelled parameters, unpermuted graph
            stale.load_state_dict(state)
            with torch.no_grad():
                assert not torch.allclose(stale(x[:, :, perm]), out[:, :, perm], rtol=1e-4, atol=1e-5)
        if self.node_params:
            stale = self.build(permuted_graph, seed=11).eval()  # permuted graph, unpermuted parameters
            with torch.no_grad():
                assert not torch.allclose(stale(x[:, :, perm]), out[:, :, perm], rtol=1e-4, atol=1e-5)

    # ---------------------------------------------------------------- learning

    def test_overfits_one_batch(self, graph: Tensor, x: Tensor) -> None:
        model = self.build(graph).train()
        target = torch.randn(self.batch_size, self.out_steps, self.num_nodes, generator=torch.Generator().manual_seed(2))
        opt = torch.optim.Adam(model.parameters(), lr=self.overfit_lr)
        losses = []
        for _ in range(self.overfit_steps):
            opt.zero_grad()
            loss = (model(x) - target).square().mean()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[-1] < losses[0] / self.overfit_factor, f"loss {losses[0]:.4f} -> {losses[-1]:.4f}"

    # ---------------------------------------------------------------- serialisation

    def test_config_round_trip(self, graph: Tensor, x: Tensor) -> None:
        model = self.build(graph, seed=21)
        cfg = json.loads(json.dumps(model.config()))
        assert cfg["name"] == self.name
        for key, value in self.hparams.items():
            assert cfg["hparams"][key] == value
        torch.manual_seed(99)  # a different init: only load_state_dict can make them agree
        rebuilt = from_config(cfg, graph)
        assert rebuilt.config() == cfg
        rebuilt.load_state_dict(model.state_dict())
        model.eval(), rebuilt.eval()
        with torch.no_grad():
            assert torch.equal(model(x), rebuilt(x))

    # ---------------------------------------------------------------- backends

    @pytest.mark.slow
    def test_torch_compile(self, graph: Tensor, x: Tensor) -> None:
        if not self.compile_check:
            pytest.skip("compile_check=False: this variant adds no module type the compile check has not seen")
        model = self.build(graph).eval()
        torch._dynamo.reset()
        try:
            compiled = torch.compile(model, backend=self.compile_backend())
            with torch.no_grad():
                out = compiled(x)
        except Exception as exc:  # compilers can be absent; say so instead of failing silently
            if "compiler" in str(exc).lower() or "cxx" in str(exc).lower():
                pytest.skip(f"torch.compile unavailable here: {exc}")
            raise
        with torch.no_grad():
            torch.testing.assert_close(out, model(x), rtol=1e-4, atol=1e-4)

    @staticmethod
    def compile_backend() -> str:
        # "inductor" generates and compiles C++ (~10-30 s per model on 2 cores); "aot_eager"
        # exercises the same graph capture (dynamo) and functionalisation in a fraction of that.
        import os

        return os.environ.get("STGKD_COMPILE_BACKEND", "aot_eager")

    def test_bf16_autocast_cpu(self, graph: Tensor, x: Tensor) -> None:
        model = self.build(graph).eval()
        with torch.no_grad():
            ref = model(x)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = model(x)
        assert out.shape == ref.shape and torch.isfinite(out.float()).all()
        scale = ref.abs().max().clamp_min(1.0)
        assert (out.float() - ref).abs().max() <= self.bf16_rtol * scale

    @pytest.mark.cuda
    @pytest.mark.skipif(not CUDA, reason="no CUDA device on this machine")
    def test_cuda_matches_cpu(self, graph: Tensor, x: Tensor) -> None:
        model = self.build(graph).eval()
        with torch.no_grad():
            ref = model(x)
            gpu = copy.deepcopy(model).cuda()
            out = gpu(x.cuda()).cpu()
        torch.testing.assert_close(out, ref, rtol=1e-3, atol=1e-3)

    # ---------------------------------------------------------------- cost

    def test_flops(self, graph: Tensor, x: Tensor) -> None:
        model = self.build(graph).eval()
        flops = count_flops(model, x)
        double = count_flops(model, torch.cat([x, x]))
        assert isinstance(flops, int) and flops > 0
        # per-sample work doubles with the batch; batch-independent work (e.g. the adaptive adjacency)
        # makes it slightly less than double
        assert flops < double <= 2 * flops
