"""Tests of pure code: no database, Redis, HTTP, SMTP or subprocess, so `make test-pure` runs them alone.

It loads the quick Hypothesis profile, a few examples per property for the loop while editing; `make test`
runs every property with its full count.
"""

from hypothesis import settings

settings.register_profile("quick", max_examples=10)
