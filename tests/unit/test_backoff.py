"""Webhook and e-mail retries: the documented cap holds whatever the jitter draws."""

from __future__ import annotations

import pytest

from broker.config import WebhookSettings
from broker.service.backoff import retry_delay

W = WebhookSettings()  # backoff 5 s doubling, cap 3600 s


def test_the_first_retry_waits_the_backoff_plus_at_most_a_quarter() -> None:
    assert retry_delay(1, W.backoff_seconds, W.max_backoff_seconds, None, 0.0) == 5
    assert retry_delay(1, W.backoff_seconds, W.max_backoff_seconds, None, 0.999) < 5 * 1.25
    assert retry_delay(3, W.backoff_seconds, W.max_backoff_seconds, None, 0.5) == 20 * 1.125


@pytest.mark.parametrize("attempts", [10, 11, 12, 30])
@pytest.mark.parametrize("draw", [0.0, 0.5, 0.999999])
def test_no_delay_exceeds_the_cap_even_with_the_largest_jitter(attempts: int, draw: float) -> None:
    # 5 * 2**9 = 2560 s: with jitter it used to reach 3200 s, and 4500 s (1.25x) at the cap.
    delay = retry_delay(attempts, W.backoff_seconds, W.max_backoff_seconds, None, draw)
    assert delay <= W.max_backoff_seconds


def test_a_delay_just_below_the_cap_is_cut_to_it_by_its_jitter() -> None:
    assert retry_delay(10, 5, 3000, None, 0.0) == 2560
    assert retry_delay(10, 5, 3000, None, 0.999) == 3000  # 2560 * 1.2497... > 3000


def test_retry_after_is_a_lower_bound_within_the_cap() -> None:
    assert retry_delay(1, 5, 3600, 120, 0.9) == 120
    assert retry_delay(1, 5, 3600, 1, 0.0) == 5  # a shorter Retry-After does not hurry us
    assert retry_delay(1, 5, 3600, 86_400, 0.9) == 3600
    assert retry_delay(30, 5, 3600, 86_400, 0.999) == 3600
