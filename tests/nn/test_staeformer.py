"""STAEformer: contract, parameter count, the embeddings it reads."""

from __future__ import annotations

import pytest
import torch

from stgkd.errors import ConfigError
from stgkd.nn import STAEformer, build

from .contract import ModelContract, single_thread  # noqa: F401  (autouse fixture)

TINY = {"input_embed": 4, "tod_embed": 4, "dow_embed": 4, "adaptive_embed": 8, "feed_forward": 16, "heads": 2,
        "layers": 1, "dropout": 0.0}


class TestSTAEformer(ModelContract):
    name = "staeformer"
    hparams = TINY
    node_params = {"adaptive_embedding": 1}


class TestSTAEformerWeekday(ModelContract):
    name = "staeformer"
    hparams = {**TINY, "day_channel": 2, "layers": 2}
    in_channels = 3
    node_params = {"adaptive_embedding": 1}
    overfit_lr = 1e-2  # two post-norm attention layers diverge at the contract's 3e-2
    compile_check = False  # same modules as above


def paper_parameter_count(n: int, c_in: int = 3, t: int = 12, out: int = 12, d_in: int = 24, d_tod: int = 24,
                          d_dow: int = 24, d_a: int = 80, ff: int = 256, layers: int = 3, slots: int = 288) -> int:
    """Parameters of STAEformer with the paper's METR-LA setting, by hand (attention in and out projections,
    the feed-forward block, two layer norms per layer; the mixed output projection)."""
    d = d_in + d_tod + d_dow + d_a
    per_layer = (3 * d * d + 3 * d) + (d * d + d) + (d * ff + ff) + (ff * d + d) + 2 * 2 * d
    return (c_in * d_in + d_in) + slots * d_tod + 7 * d_dow + t * n * d_a + 2 * layers * per_layer + t * d * out + out


def test_parameter_count_by_hand() -> None:
    model = build("staeformer", num_nodes=207, in_channels=3, day_channel=2)
    assert model.width == 152
    assert model.num_parameters() == paper_parameter_count(207) == 1_258_980
    plain = build("staeformer", num_nodes=207, in_channels=2)  # no weekday: width 128
    assert plain.num_parameters() == paper_parameter_count(207, c_in=2, d_dow=0) - 7 * 0


def _inputs(b: int = 2, n: int = 5, c: int = 3, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 12, n, c, generator=gen)
    x[..., 1] = torch.rand(b, 12, 1, generator=gen) * 0.99  # the time of day, the same for every sensor
    if c > 2:
        x[..., 2] = 3 / 7
    return x


def test_time_of_day_is_read_at_every_step() -> None:
    """Only the first step's time of day changes: the forecast moves through the embedding of that step (the
    input projection also sees the channel, so it is switched off by zeroing its weights for it)."""
    torch.manual_seed(0)
    model = build("staeformer", num_nodes=5, in_channels=2, **TINY).eval()
    with torch.no_grad():
        model.input_proj.weight[:, 1] = 0.0
    x = _inputs(c=2)
    moved = x.clone()
    moved[:, 0, :, 1] = (moved[:, 0, :, 1] + 0.5) % 1.0
    with torch.no_grad():
        assert not torch.allclose(model(x), model(moved))
        model.tod_embedding.weight.zero_()
        assert torch.allclose(model(x), model(moved))  # nothing else reads it


def test_weekday_embedding_reads_its_channel() -> None:
    torch.manual_seed(0)
    model = build("staeformer", num_nodes=5, in_channels=3, day_channel=2, **{k: v for k, v in TINY.items()}).eval()
    with torch.no_grad():
        model.input_proj.weight[:, 2] = 0.0
    x = _inputs()
    other = x.clone()
    other[..., 2] = 5 / 7
    with torch.no_grad():
        assert not torch.allclose(model(x), model(other))
    no_day = build("staeformer", num_nodes=5, in_channels=3, **TINY)
    assert no_day.dow_embedding is None and no_day.width == 16


def test_last_feature_is_the_last_step_of_hidden() -> None:
    model = build("staeformer", num_nodes=5, in_channels=3, **TINY).eval()
    with torch.no_grad():
        out, feats = model(_inputs(), return_features=True)
    assert out.shape == (2, 12, 5)
    assert torch.equal(feats["last"], feats["hidden"][:, -1])
    assert feats["temporal"].shape == feats["hidden"].shape == (2, 12, 5, 16)


@pytest.mark.parametrize("bad, match", [
    ({"heads": 3}, "multiple of heads"),
    ({"layers": 0}, "layers"),
    ({"tod_embed": -1}, "tod_embed"),
    ({"dropout": 1.0}, "dropout"),
    ({"day_channel": 5}, "day_channel 5"),
    ({"time_channel": 4}, "time of day in input channel 4"),
])
def test_bad_hparams_raise(bad: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build("staeformer", num_nodes=5, in_channels=3, **{**TINY, **bad})


def test_registered_as_a_teacher_that_reads_no_graph() -> None:
    assert STAEformer.role == "teacher" and not STAEformer.uses_graph
