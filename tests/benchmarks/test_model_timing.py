"""benchmarks.model_timing: every model timed at the passes that apply to it."""

from __future__ import annotations

import numpy as np
import torch


def test_a_baseline_is_timed_forward_only_and_a_student_both_ways() -> None:
    from benchmarks.model_timing import time_models

    adj = np.eye(4, dtype=np.float32)
    rows = time_models(["last-value", "gru"], adj, batches={"baseline": [1], "student": [1]}, dtypes=["fp32"],
                       passes=["forward", "forward+backward"], device=torch.device("cpu"), warmup=0, iters=1,
                       log=lambda line: None)
    got = {(r.model, r.passes) for r in rows}
    assert got == {("last-value", "forward"), ("gru", "forward"), ("gru", "forward+backward")}
    assert all(not r.error and r.median_ms > 0 for r in rows)
