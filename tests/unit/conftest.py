"""Fixtures the pure unit tests share: the demo directory and the shipped policy set, parsed once
per module."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.directory.load import load_directory_file
from broker.domain.directory import Directory
from broker.policy.load import PolicySet, load_policies
from tests.conftest import POLICIES


@pytest.fixture(scope="module")
def directory(demo_template: Path) -> Directory:
    return load_directory_file(demo_template / "directory.yaml", max_bytes=10_000_000)[0]


@pytest.fixture(scope="module")
def policies() -> PolicySet:
    return load_policies(POLICIES)
