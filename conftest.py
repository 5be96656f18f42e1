"""Repository-level pytest configuration: doctests from the repository root, hypothesis profiles.

Hypothesis profiles (``--hypothesis-profile NAME``, or ``HYPOTHESIS_PROFILE=NAME``):

- ``default``: fast (100 examples a property, no deadline: the machine may be loaded); the
  README's test command uses it.
- ``thorough``: ten times the examples, no deadline; ``.ci/run`` runs the property tests and
  the ``slow`` tests with it.

A test that sets its own ``max_examples`` (``@settings(max_examples=300)``) follows the profile
too: under ``thorough`` its count is multiplied by the same factor (see
:func:`pytest_collection_modifyitems`).
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import settings

collect_ignore = ["src/mps_analgesia/__main__.py"]

#: Examples a property gets under the default profile; other profiles scale from it.
BASE_EXAMPLES = 100

settings.register_profile("default", max_examples=BASE_EXAMPLES, deadline=None)
settings.register_profile("thorough", max_examples=10 * BASE_EXAMPLES, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def profile_scale() -> float:
    """How many times the default profile's examples the loaded profile runs."""
    return settings.default.max_examples / BASE_EXAMPLES


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    """Scale each test's own ``max_examples`` by the loaded profile (after it is loaded)."""
    scale = profile_scale()
    if scale == 1:
        return
    for item in items:
        function = getattr(getattr(item, "obj", None), "__func__", getattr(item, "obj", None))
        own = getattr(function, "_hypothesis_internal_use_settings", None)
        if own is None:
            continue
        scaled = settings(own, max_examples=max(1, round(own.max_examples * scale)))
        function._hypothesis_internal_use_settings = scaled
