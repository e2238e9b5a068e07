"""Hypothesis profiles of the fuzz tests: "ci" (the default: few examples, so the suite stays
fast) and "nightly" (many more), chosen with FASTNN_FUZZ_PROFILE. Tests apply them with
@fuzz_settings rather than load_profile, so other test files keep hypothesis's defaults;
the native-path cases that run in a subprocess import them too."""
import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=20, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("nightly", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
PROFILE = os.environ.get("FASTNN_FUZZ_PROFILE", "ci")
if PROFILE not in ("ci", "nightly"):
    raise ValueError(f"FASTNN_FUZZ_PROFILE must be 'ci' or 'nightly', got {PROFILE!r}")
fuzz_settings = settings.get_profile(PROFILE)
