"""Under CI the fault suite's root-only tests and the browser tests fail instead of skipping."""

from __future__ import annotations

import pytest

from tests.ci import cannot_run_here, in_ci


@pytest.mark.parametrize("value", ["true", "1", "yes", "TRUE", "github"])
def test_ci_is_on_for_any_value_but_an_explicit_off(value: str) -> None:
    assert in_ci({"CI": value})


@pytest.mark.parametrize("environ", [{}, {"CI": ""}, {"CI": "false"}, {"CI": "0"}, {"CI": "no"}])
def test_ci_is_off_when_unset_or_switched_off(environ: dict[str, str]) -> None:
    assert not in_ci(environ)


def test_a_test_that_cannot_run_fails_under_ci() -> None:
    with pytest.raises(pytest.fail.Exception, match="CI must run this test, but needs root"):
        cannot_run_here("needs root", {"CI": "true"})


def test_a_test_that_cannot_run_is_skipped_outside_ci() -> None:
    with pytest.raises(pytest.skip.Exception, match="needs root"):
        cannot_run_here("needs root", {})
