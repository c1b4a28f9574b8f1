"""Suite-wide settings.

Property tests (hypothesis) run derandomized by default, so `make test` and CI see the same examples every
run and a red build always reproduces. Set HYPOTHESIS_PROFILE=explore to search with fresh random examples.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))
