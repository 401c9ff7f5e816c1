"""The names a page shows beside the machine ids: channel and role titles, jurisdiction and
organisation names from the loaded policies and directory, and the acknowledgement deadline.
Additive fields of the inbox, notice, status and sent-list answers; an id the view does not
know (removed since) answers None, and the page falls back to the id."""

from __future__ import annotations

from datetime import datetime, timedelta

from broker.state import View
from broker.store.deliveries_repo import InboxItem


def names(
    view: View,
    *,
    channel: str,
    jurisdiction: str,
    sender: str | None = None,
    role: str | None = None,
) -> dict[str, str | None]:
    directory = view.directory
    found_channel = view.policies.channels.get(channel)
    found_jurisdiction = directory.jurisdictions.get(jurisdiction)
    out: dict[str, str | None] = {
        "channel_title": found_channel.title if found_channel else None,
        "jurisdiction_name": found_jurisdiction.name if found_jurisdiction else None,
    }
    if sender is not None:
        organisation = directory.organisations.get(sender)
        out["sender_name"] = organisation.name if organisation else None
    if role is not None:
        found_role = directory.roles.get(role)
        out["role_title"] = found_role.title if found_role else None
    return out


def ack_deadline(view: View, channel: str, sent_at: datetime) -> str | None:
    """When an acknowledgement is due: the channel's ``ack_deadline_hours`` after the notice was
    sent (where escalation counts from), or None when the channel sets no deadline."""
    found = view.policies.channels.get(channel)
    if found is None or not found.ack_deadline_hours:
        return None
    return _time(sent_at + timedelta(hours=found.ack_deadline_hours))


def _time(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def named_item(view: View, item: InboxItem) -> dict[str, str | None]:
    """The names and deadline of one inbox item (``InboxItem``)."""
    return {
        **names(
            view,
            channel=item.channel,
            jurisdiction=item.jurisdiction,
            sender=item.sender,
            role=item.role,
        ),
        "ack_deadline": ack_deadline(view, item.channel, item.created_at),
    }
