"""Skips that CI must not take: under CI a test that cannot run here fails instead.

`.ci/run` sets ``CI=true`` (as most CI services do). A skip there would let CI pass without
running what it exists to run — the PostgreSQL outage, the full disk, the browser — so
``cannot_run_here`` fails the test under CI and skips it everywhere else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NoReturn

import pytest

_OFF = {"", "0", "false", "no"}


def in_ci(environ: Mapping[str, str]) -> bool:
    """``CI`` is set to anything but an explicit off value."""
    return environ.get("CI", "").strip().lower() not in _OFF


def cannot_run_here(reason: str, environ: Mapping[str, str] = os.environ) -> NoReturn:
    """Skip with ``reason``; under CI, fail with it."""
    if in_ci(environ):
        pytest.fail(f"CI must run this test, but {reason}")
    pytest.skip(reason)
