"""The fuzz suite's hypothesis profile (see profiles.py): its settings apply to these tests
only, so the rest of the suite keeps its own."""
