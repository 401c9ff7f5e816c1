"""When a failed webhook or e-mail is tried again: exponential backoff with jitter, capped.

Invariants (pure, no I/O; the random draw is passed in):
- the n-th retry waits ``base * 2**(n-1)`` seconds plus up to 25 % jitter, so receivers that
  failed together are not retried in lockstep;
- no delay ever exceeds ``cap``: the jitter is applied inside the cap, and a ``Retry-After``
  longer than the cap is cut to it;
- a ``Retry-After`` is honoured as a lower bound (within the cap).
"""

from __future__ import annotations

JITTER = 0.25  # at most this fraction of the backoff is added at random


def retry_delay(
    attempts: int, base: float, cap: float, retry_after: float | None, draw: float
) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt (1 = the first); ``draw`` in
    [0, 1) picks the jitter."""
    delay = min(cap, base * 2.0 ** (attempts - 1) * (1 + draw * JITTER))
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay
