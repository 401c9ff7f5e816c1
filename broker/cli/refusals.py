"""The broker's refusals in the CLI's language, one line from the problem document (RFC 9457).

The broker writes a problem's ``detail`` in English. The sentences a person meets from ``send``,
``status``, ``inbox``, ``read``, ``ack`` and ``watch`` are in the gettext catalogs under that same
English text (``BROKER_MESSAGES``; tests/unit/test_cli_refusals.py checks that the broker still
raises each), so they read in the CLI's language, and any other as the broker wrote it. A 403's
``why`` (its reason as data) is said in the CLI's language too; each schema violation keeps its
JSON pointer, with the validator's own words as the broker gave them.
"""

from __future__ import annotations

from typing import Any

from broker.cli.i18n import N_, _

BROKER_MESSAGES = (
    N_("the notice does not match its schema"),
    N_("this agency may not publish this notice"),
    N_("no such notice"),
    N_("this notice has been destroyed at the end of its retention"),
    N_("authentication failed"),
    N_("no one can receive this notice under the policies in force"),
    N_("unknown channel"),
    N_("unknown jurisdiction"),
    N_("this idempotency key was used for a different request"),
)
WHY = {
    "forbidden_by_policy": N_("forbidden by policy {policies}"),
    "no_policy_permits": N_(
        "no policy permits {sender} to publish on {channel} for {jurisdiction}"
    ),
}


def refusal_line(status: int | None, problem: dict[str, Any], fallback: str) -> str:
    """``STATUS CODE: detail (what the document says beyond it)``; ``fallback`` (the client's
    own message) when the broker was not reached or answered no document."""
    if status is None or not problem:
        return fallback
    code = problem.get("code") or problem.get("error", "")  # problem+json, or RFC 6749 §5.2
    detail = problem.get("detail") or problem.get("error_description") or "refused"
    line = f"{status} {code}: {_(str(detail))}"
    more = _beyond(problem)
    return f"{line} ({more})" if more else line


def _beyond(problem: dict[str, Any]) -> str:
    """Each schema violation with its pointer, else a 403's reason (translated from ``why``)."""
    violations = problem.get("violations")
    if isinstance(violations, list) and violations:
        return "; ".join(
            f"{v.get('pointer') or '/'}: {v.get('message', '')}"
            for v in violations
            if isinstance(v, dict)
        )
    why = problem.get("why")
    if isinstance(why, dict) and why.get("rule") in WHY:
        fields = {k: str(v) for k, v in why.items() if isinstance(v, str)}
        fields["policies"] = ", ".join(str(p) for p in why.get("policies") or [])
        try:
            return _(WHY[why["rule"]], **fields)
        except KeyError:  # a field the rule needs is missing: the broker's own words below
            pass
    reason = problem.get("reason")
    return reason if isinstance(reason, str) else ""
