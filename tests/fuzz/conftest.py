"""Hypothesis profiles for the fuzz suite: "ci" (the default, a few seconds) and "nightly"
(many more examples), chosen with FASTNN_FUZZ_PROFILE=nightly."""
import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("nightly", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("FASTNN_FUZZ_PROFILE", "ci"))
