"""How the reference trainer applies each controller: its recipes, by ``--algo`` name.

The registry (``safecontrol.registry``) holds controllers only; what a decision asks of every loop
travels on the decision (``max_preview_kl``). A recipe is what only this loop does with a
controller (as optax's ``alias.py`` pairs a name with a chain): how many value heads, how the
penalty reaches the loss, and how a step's KL is found. ``safe-published`` exists only here: SAFE's
controller applied as the paper's public code applies it (a detached penalty, no preview), which
no other loop reproduces, so no integration can be asked for it by name.
"""

from __future__ import annotations

from dataclasses import dataclass

from safecontrol import registry


@dataclass(frozen=True)
class Recipe:
    """One ``--algo``: a registered controller and how this trainer applies it."""

    controller: str
    """The ``safecontrol.registry`` name of the controller."""
    critic_heads: int = 1
    """Value heads when ``TrainConfig.critic_heads`` is 0."""
    penalty_mode: str = "hinge"
    """``TrainConfig.penalty_mode`` when left at its default."""
    preview_steps: bool = True
    """``TrainConfig.preview_steps`` when left at its default."""
    step_limit: str = "preview"
    """``TrainConfig.step_limit`` when "auto"."""


RECIPES = {
    "kl-budget": Recipe("kl-budget", step_limit="predicted"),
    "safe": Recipe("safe", critic_heads=2),
    "safe-published": Recipe("safe", critic_heads=2, penalty_mode="detached", preview_steps=False),
}
"""Controllers applied other than by this trainer's defaults; every other registered name is
``Recipe(name)``."""
SUMMARIES = {
    "safe-published": "SAFE as the paper's public code runs it (arXiv 2602.04651): the published "
    "constants, the penalty a detached float that never reaches the gradient, no preview step "
    "scaling (SPEC's known defects); for reproducing the paper's comparison, not for training."
}
"""One line for a recipe whose name is not a registered controller's."""


def names() -> tuple[str, ...]:
    """Every ``--algo``: the registered controllers and this trainer's own recipes, sorted."""
    return tuple(sorted({*registry.names(), *RECIPES}))


def recipe(algo: str) -> Recipe:
    """The recipe of ``algo``; an unknown name is a ``ValueError`` listing the known ones."""
    if algo in RECIPES:
        return RECIPES[algo]
    if algo not in registry.names():
        raise ValueError(f"unknown controller {algo!r}; known: {list(names())}")
    return Recipe(algo)


def summary(algo: str) -> str:
    """The one-line description of ``algo``."""
    return SUMMARIES.get(algo) or registry.registration(recipe(algo).controller).summary
