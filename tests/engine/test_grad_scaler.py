"""Loss scaling in the training loop: a scaled run takes the same steps as an unscaled one (gradients
unscaled before clipping and stepping), and the scaler's state travels in the checkpoint."""

from __future__ import annotations

import torch

from stgkd.data.synthetic import generate
from stgkd.data.windows import prepare
from stgkd.engine import TrainConfig
from stgkd.engine import trainer as trainer_module
from stgkd.engine.trainer import Trainer, seed_everything
from stgkd.nn import build


def _fit(prepared, *, scaled: bool, monkeypatch):
    # a CUDA-only need (cuDNN's GRU runs fp16 under autocast) forced on the CPU: the scaler is exercised,
    # in float32, where scaling by a power of two and unscaling is exact
    if scaled:
        monkeypatch.setattr(trainer_module, "grad_scaler",
                            lambda model, device, amp: torch.amp.GradScaler("cpu", init_scale=2.0**12,
                                                                            growth_interval=1))
    cfg = TrainConfig(epochs=2, batch_size=16, limit_batches=3, device="cpu", seed=0, patience=0, clip_grad=0.05)
    seed_everything(cfg.seed)
    model = build("gru", num_nodes=prepared.num_nodes, graph=prepared.adj, in_channels=prepared.in_channels, hidden=8)
    trainer = Trainer(model, prepared, config=cfg)
    trainer.fit()
    monkeypatch.undo()
    return model, trainer


def test_a_scaled_run_takes_the_unscaled_run_s_steps(monkeypatch):
    data, _ = generate(num_nodes=5, num_days=2, seed=0)
    prepared = prepare(data)
    plain, plain_trainer = _fit(prepared, scaled=False, monkeypatch=monkeypatch)
    scaled, scaled_trainer = _fit(prepared, scaled=True, monkeypatch=monkeypatch)
    assert not plain_trainer.grad_scaler.is_enabled()
    # the scale doubled after each of the 6 steps: every step ran scaled, none overflowed
    assert scaled_trainer.grad_scaler.get_scale() == 2.0**12 * 2**6
    a, b = plain.state_dict(), scaled.state_dict()
    moved = plain_trainer.history[0]["train_loss"] != plain_trainer.history[1]["train_loss"]
    assert moved and all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-7) for k in a), \
        "clipping (0.05, active) saw the gradients unscaled, and the optimiser took the same steps"
    payload = scaled_trainer.checkpoint()
    assert payload["grad_scaler"]["scale"] == 2.0**12 * 2**6
    assert plain_trainer.checkpoint()["grad_scaler"] == {}
