"""What a worker of a study tells its user: its log lines, and the study-wide progress bar that also stops
the worker once the whole study reaches ``--n-trials`` (or after too many failures in a row)."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["FINISHED", "MAX_CONSECUTIVE_FAILURES", "StudyProgress", "log"]

#: trial states that count towards ``--n-trials``
FINISHED = ("COMPLETE", "PRUNED")
#: trials failing in a row after which a worker stops
MAX_CONSECUTIVE_FAILURES = 5


def log(msg: str) -> None:
    """One ``[tuning]`` line on stderr."""
    print(f"[tuning] {msg}", file=sys.stderr, flush=True)


class StudyProgress:
    """Study-wide progress (trials of every worker) on a tqdm bar, plus stopping at the target."""

    def __init__(self, study: Any, target: int, *, enabled: bool) -> None:
        from tqdm.auto import tqdm

        self.target = target
        self.failures = 0
        done = self.finished(study)
        self.bar = tqdm(total=target, initial=min(done, target), desc=f"study {study.study_name}", unit="trial",
                        disable=not enabled, file=sys.stderr, dynamic_ncols=True)

    @staticmethod
    def finished(study: Any) -> int:
        return sum(1 for t in study.get_trials(deepcopy=False) if t.state.name in FINISHED)

    def __call__(self, study: Any, trial: Any) -> None:
        from tuning.report import trial_status
        from tuning.storage import recover_stale_trials

        recovered = recover_stale_trials(study)
        for number, reason in recovered:
            log(f"trial {number} failed ({reason}); its parameters are queued again")
        trials = study.get_trials(deepcopy=False)
        done = sum(1 for t in trials if t.state.name in FINISHED)
        statuses = [trial_status(t) for t in trials]
        best = [t.user_attrs.get("val_mae") for t in trials if trial_status(t) == "complete"]
        self.bar.n = min(done, self.target)
        self.bar.set_postfix(best_mae=f"{min(best):.4g}" if best else "-", infeasible=statuses.count("infeasible"),
                             pruned=statuses.count("pruned"), refresh=False)
        self.bar.refresh()
        self.failures = self.failures + 1 if trial.state.name == "FAIL" else 0
        if done >= self.target:
            study.stop()
        elif self.failures >= MAX_CONSECUTIVE_FAILURES:
            log(f"{self.failures} trials failed in a row in this worker; stopping it (see the report)")
            study.stop()

    def close(self) -> None:
        self.bar.close()
