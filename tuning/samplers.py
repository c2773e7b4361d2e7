"""The sampler and the pruner of a study (``--sampler``, ``--pruner``): separate choices, as Optuna means them.

:func:`make_sampler` reseeds its sampler from ``(--seed, trial number)`` before every trial, so one worker
reproduces a run and workers sharing a study never draw the same start-up points; :func:`make_pruner`
stops unpromising trials from their per-epoch validation MAE.
"""

from __future__ import annotations

import warnings

from stgkd.errors import ConfigError

__all__ = ["make_pruner", "make_sampler"]


def make_sampler(name: str, seed: int, multi: bool, n_trials: int):
    import optuna
    from optuna.samplers._lazy_random_state import LazyRandomState

    from tuning.storage import worker_identity

    class _PerTrialSeed:
        """Reseed the sampler from (seed, trial number) before every trial: one worker reproduces a
        run exactly, and workers sharing a study never draw the same random start-up points."""

        _base_seed = seed

        def before_trial(self, study, trial):  # noqa: D401 - Optuna hook
            # record the worker at once (the objective does it too): a process killed between creating
            # the trial and starting the objective still leaves a trial that is recognised as its own
            study._storage.set_trial_user_attr(trial._trial_id, "worker", worker_identity())
            s = (self._base_seed * 1_000_003 + trial.number) % (2**32)
            for obj in (self, getattr(self, "_random_sampler", None)):
                rng = getattr(obj, "_rng", None)
                if isinstance(rng, LazyRandomState):
                    rng.rng.seed(s)
            super().before_trial(study, trial)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # multivariate TPE is marked experimental
        if name == "nsga2":
            if not multi:
                raise ConfigError("--sampler nsga2 is for --multi-objective; use tpe for a single objective")

            class SeededNSGAII(_PerTrialSeed, optuna.samplers.NSGAIISampler):
                pass

            return SeededNSGAII(seed=seed, population_size=max(4, min(50, n_trials // 4)))

        class SeededTPE(_PerTrialSeed, optuna.samplers.TPESampler):
            pass

        return SeededTPE(seed=seed, multivariate=True, constant_liar=True, n_startup_trials=min(10, max(5, n_trials // 5)))


def make_pruner(name: str, epochs: int):
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=min(2, epochs))
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)
    return optuna.pruners.NopPruner()
