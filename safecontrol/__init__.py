"""safecontrol: controllers that stabilise RLHF training.

The SAFE method (arXiv 2602.04651) built so its controls reach the gradient: a PID-controlled,
entropy-gated, one-sided KL penalty and a soft-min critic aggregate, beside the classic KL
controllers it is measured against. The core needs only numpy; torch adapters live in
``safecontrol.torch`` and test helpers in ``safecontrol.testing``, both imported only when asked.
"""

from . import registry
from ._version import __version__ as __version__
from .budget_kl import BudgetKL
from .classic import AdaptiveKL, FixedKL, PPOAdaptiveKL
from .contract import KL_UNITS, Controller, DeadBandDecision, Decision
from .critic import soft_min
from .decision import BudgetDecision, CoefDecision, SafeDecision
from .entropy_target import EntropyTargetController
from .estimators import kl_per_token
from .filters import EMA, DualEMA
from .gate import EntropyGate
from .penalty import dead_band_penalty, dead_band_slope, preview_step_scale
from .phase import Phase, PhaseDetector
from .pid import PID
from .pid_lagrangian import PIDLagrangianKL
from .safe import SafeController
from .safe_config import SafeConfig
from .threshold import AdaptiveThreshold
from .velocity import RewardVelocity

__all__ = [
    "EMA",
    "KL_UNITS",
    "PID",
    "AdaptiveKL",
    "AdaptiveThreshold",
    "BudgetDecision",
    "BudgetKL",
    "CoefDecision",
    "Controller",
    "DeadBandDecision",
    "Decision",
    "DualEMA",
    "EntropyGate",
    "EntropyTargetController",
    "FixedKL",
    "PIDLagrangianKL",
    "PPOAdaptiveKL",
    "Phase",
    "PhaseDetector",
    "RewardVelocity",
    "SafeConfig",
    "SafeController",
    "SafeDecision",
    "dead_band_penalty",
    "dead_band_slope",
    "kl_per_token",
    "preview_step_scale",
    "registry",
    "soft_min",
]
