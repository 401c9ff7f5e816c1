"""The one error tree and the one status table agree: every error a handler can raise has a
status of its own (not the fallback), a stable problem ``type``, and a code no other class has."""

from __future__ import annotations

import inspect
import json

import pytest

from broker import errors
from broker.errors import (
    Conflict,
    IdempotencyConflict,
    KeyRevoked,
    LiaisonError,
    NoticeInvalid,
    StoreUnavailable,
    UnknownChannel,
)
from broker.http.problems import PROBLEM_BASE, STATUS, from_error, status_of

CLASSES = [
    c
    for _, c in inspect.getmembers(errors, inspect.isclass)
    if issubclass(c, LiaisonError) and c is not LiaisonError and c.__module__ == errors.__name__
]


def liaison_subclasses(cls: type[LiaisonError]) -> set[type[LiaisonError]]:
    found: set[type[LiaisonError]] = set()
    for sub in cls.__subclasses__():
        found |= {sub, *liaison_subclasses(sub)}
    return found


def test_every_liaison_error_is_defined_in_broker_errors() -> None:
    import broker.app  # noqa: F401 - imports every handler, service and store module

    elsewhere = sorted(
        f"{c.__module__}.{c.__qualname__}"
        for c in liaison_subclasses(LiaisonError)
        if c.__module__ != errors.__name__ and not c.__module__.startswith("tests")
    )
    assert elsewhere == []


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_error_has_a_status_of_its_own_class_tree(cls: type[LiaisonError]) -> None:
    listed = [c for c in cls.__mro__ if c in STATUS]
    assert listed, f"{cls.__name__} falls through to the 500 fallback"
    assert 400 <= status_of(cls) <= 599


def test_codes_are_unique_and_stable_snake_case() -> None:
    codes = [c.code for c in [LiaisonError, *CLASSES]]
    assert len(codes) == len(set(codes)), sorted(c for c in codes if codes.count(c) > 1)
    assert all(c.replace("_", "").isalpha() and c == c.lower() for c in codes)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (IdempotencyConflict("x"), 409),  # the subclass listed under its parent
        (Conflict("x"), 409),
        (UnknownChannel("x"), 422),
        (StoreUnavailable("x"), 503),
        (KeyRevoked("x"), 500),
        (NoticeInvalid([]), 422),
    ],
)
def test_the_problem_type_is_built_from_the_code_and_the_status_from_the_class(
    error: LiaisonError, status: int
) -> None:
    response = from_error(error, "req-1")
    assert response.text is not None
    body = json.loads(response.text)
    assert response.status == status == body["status"]
    assert body["type"] == PROBLEM_BASE + error.code
    assert body["code"] == error.code


def test_the_most_specific_class_in_the_table_wins() -> None:
    class Narrow(Conflict):
        code = "narrow_test"

    STATUS[Narrow] = 418
    try:
        assert status_of(Narrow) == 418
        assert status_of(IdempotencyConflict) == 409
    finally:
        del STATUS[Narrow]
