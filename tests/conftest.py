"""Hypothesis profiles: "default" for local runs and CI (deterministic, no deadline: the CI
machine's speed must not decide a property test), "thorough" for longer local runs."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
