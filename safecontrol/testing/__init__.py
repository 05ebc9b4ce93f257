"""Test helpers: a surrogate RLHF plant that reproduces SPEC §6's pathologies in milliseconds,
its named pathology presets, and SPEC §5's run metrics.

    from safecontrol import SafeController
    from safecontrol.testing import PATHOLOGIES, run, summarize_trajectory

    setting = PATHOLOGIES["kl_runaway"]
    baseline = summarize_trajectory(setting.run(seed=0))            # fixed β = 0.05: KL > 3 nats
    safe = summarize_trajectory(run(SafeController(), setting.config.replace(seed=0)))

Hypothesis strategies live in ``safecontrol.testing.strategies`` (imported only when asked for,
as it needs ``hypothesis``).
"""

from .config import KL_MEASUREMENTS, SPIKE_TOKEN, PlantConfig, Task, make_task
from .conformance import check_controller
from .metrics import (
    RunMetrics,
    batch_noise_std,
    count_crashes,
    crash_margin,
    crash_onsets,
    entropy_collapse_steps,
    fraction_above,
    rolling_mean,
    summarize,
    summarize_trajectory,
    volatility,
)
from .pathologies import PATHOLOGIES, Pathology
from .plant import Trajectory, run

__all__ = [
    "KL_MEASUREMENTS",
    "PATHOLOGIES",
    "SPIKE_TOKEN",
    "Pathology",
    "PlantConfig",
    "RunMetrics",
    "Task",
    "Trajectory",
    "batch_noise_std",
    "check_controller",
    "count_crashes",
    "crash_margin",
    "crash_onsets",
    "entropy_collapse_steps",
    "fraction_above",
    "make_task",
    "rolling_mean",
    "run",
    "summarize",
    "summarize_trajectory",
    "volatility",
]
