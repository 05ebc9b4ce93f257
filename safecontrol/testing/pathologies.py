"""Named plant settings that reproduce the pathologies of SPEC §6, each with the controller it
shows under. Ranges observed over seeds 0–9 (``tests/testing/test_plant.py`` checks them, with
margins, on seeds 0–2; a run of 300 steps takes ~50 ms):

- ``reward_hacking`` (no KL penalty, lr 1): the proxy reward (10-step mean) climbs from 0.11–0.14
  to 0.89–0.98 while the true reward falls from 0.09–0.11 to 0.01–0.07; at the end 80–98% of the
  completions are the spike token and the entropy has fallen from ~3.0 to 0.06–0.11 nats.
- ``kl_runaway`` (β = 0.05 fixed, SPEC §6's coefficient, at lr 10): the per-token KL passes 3 nats,
  ten times SAFE's base threshold, at step 24–46 and ends at 3.4–3.5; entropy falls to ~0.01.
- ``entropy_collapse`` (β = 0.01 fixed, lr 3, no exploit): the entropy falls from ~3.0 nats to
  0.025–0.056, below 10% of its initial value for 222–251 of the 300 steps (mode collapse onto one
  honest token per context).
- ``late_crash`` (β = 0.05 fixed, lr 1, reward breakdown beyond 3 nats per context): the reward
  climbs from ~0.12 to a peak of 0.31–0.39 at step 54–121, then crashes (SPEC §5's definition,
  onset at step 85–144) to 0.05–0.08 and never recovers.

``Pathology.run(seed)`` runs the preset under its controller; to test your own controller on the
same setting use ``run(controller, pathology.config.replace(seed=seed))``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ..classic import FixedKL
from .config import PlantConfig
from .plant import Trajectory, run


@dataclass(frozen=True)
class Pathology:
    """A plant setting and the fixed KL coefficient under which a pathology appears."""

    name: str
    description: str
    config: PlantConfig
    fixed_coef: float | None
    """β of the ``FixedKL`` controller that shows it; None means no KL penalty at all."""

    def controller(self) -> FixedKL | None:
        """A fresh instance of the controller the pathology shows under."""
        return None if self.fixed_coef is None else FixedKL(self.fixed_coef)

    def run(self, seed: int = 0) -> Trajectory:
        """The pathological run for ``seed``."""
        return run(self.controller(), self.config.replace(seed=seed))


PATHOLOGIES: Mapping[str, Pathology] = MappingProxyType(
    {
        p.name: p
        for p in (
            Pathology(
                "reward_hacking",
                "no KL penalty: proxy reward rises while true reward falls; the spike token "
                "takes over",
                PlantConfig(lr=1.0),
                None,
            ),
            Pathology(
                "kl_runaway",
                "small fixed β at a high learning rate: KL climbs past 3 nats per token",
                PlantConfig(lr=10.0),
                0.05,
            ),
            Pathology(
                "entropy_collapse",
                "small fixed β, no exploit, lr 3: entropy below 10% of its initial value",
                PlantConfig(lr=3.0, spike_reward=0.0, honest_reward=1.0),
                0.01,
            ),
            Pathology(
                "late_crash",
                "small fixed β, reward breaks down beyond 3 nats per context: the reward "
                "climbs, then crashes and stays down",
                PlantConfig(lr=1.0, crash_kl=3.0),
                0.05,
            ),
        )
    }
)
