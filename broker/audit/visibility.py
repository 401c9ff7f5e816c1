"""Which audit events an auditor sees: those of their jurisdiction, and the log-wide ones.

Attacker: an auditor of one country reading another's trail (recipients, read and acknowledgement
times of a notice). Pure: the caller passes the directory and the auditor's scope (the
jurisdictions a Cedar ``audit_jurisdiction`` decision allowed). Invariants:

- an event about a notice belongs to the notice's jurisdiction, whoever caused it (the sender,
  the broker's routing and escalation, a recipient's read or acknowledgement, a refused read);
- except an event about a notice this broker forwarded to a peer (its jurisdiction is in another
  country): it belongs to the sending agency's jurisdiction, so the sending country's auditors
  oversee their agencies' crossings here, and the receiving country's see the other half on
  their own broker;
- any other event belongs to the jurisdiction of the agency or contact that caused it (a refused
  post, a token, an auditor's own reads of the log);
- an event caused by an agency or contact the directory does not know (any more), and one by
  the broker or an operator about a notice id that has no notice row, are shown to no auditor
  through the API: their place cannot be decided, so they fail closed;
- the remaining events are log-wide and shown to every auditor: policy loaded or refused,
  directory applied, exports by the operator, and refusals of requests that proved no identity
  (actor ``unknown``) — the rules and the register every auditor reviews, and the noise at the
  door, which belongs to no country.

A hidden event is still a leaf of the Merkle tree: callers that must recompute the chain and the
root get its leaf hash only (``HIDDEN``), never its content.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.domain.directory import Directory

HIDDEN = "hidden"


@dataclass(frozen=True, slots=True)
class EventPlace:
    """What is needed to place one stored event: its actor and its notice's jurisdiction."""

    actor: str
    notice_jurisdiction: str | None  # None when the event is about no (existing) notice
    about_notice: bool = False  # the event names a notice id (existing or not)
    sent_abroad_by: str | None = None  # the sending agency of a notice forwarded to a peer


def _organisation_place(organisation_id: str, directory: Directory) -> str:
    organisation = directory.organisations.get(organisation_id)
    return organisation.jurisdiction if organisation is not None else HIDDEN


def jurisdiction_of(place: EventPlace, directory: Directory) -> str | None:
    """The event's jurisdiction; ``None`` for a log-wide event; ``HIDDEN`` when undecidable."""
    if place.sent_abroad_by is not None:
        return _organisation_place(place.sent_abroad_by, directory)
    if place.notice_jurisdiction is not None:
        return place.notice_jurisdiction
    kind, _, ident = place.actor.partition(":")
    if kind == "agency":
        return _organisation_place(ident, directory)
    if kind == "contact":
        contact = directory.contacts.get(ident)
        if contact is None or contact.organisation not in directory.organisations:
            return HIDDEN
        return directory.organisations[contact.organisation].jurisdiction
    return HIDDEN if place.about_notice else None


def visible(place: EventPlace, directory: Directory, scope: frozenset[str]) -> bool:
    """Whether an auditor whose scope is ``scope`` (jurisdiction ids) sees this event."""
    where = jurisdiction_of(place, directory)
    return where is None or where in scope
