"""The names a page shows beside the machine ids: channel and role titles, jurisdiction and
organisation names from the loaded policies and directory, and the acknowledgement deadline.
Additive fields of the inbox, notice, status and sent-list answers; an id the view does not
know (removed since) answers None, and the page falls back to the id.

Each name is in the reader's ``language`` (one of ``broker.titles.CODES``: the request's
``Accept-Language``), else the file's default text (``broker.titles``); None means the default.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from broker.state import View
from broker.store.deliveries_repo import InboxItem
from broker.titles import pick


def names(
    view: View,
    *,
    channel: str,
    jurisdiction: str,
    sender: str | None = None,
    role: str | None = None,
    language: str | None = None,
) -> dict[str, str | None]:
    directory = view.directory
    found_channel = view.policies.channels.get(channel)
    out: dict[str, str | None] = {
        "channel_title": channel_title(view, channel, language) if found_channel else None,
        "jurisdiction_name": jurisdiction_name(view, jurisdiction, language),
    }
    if sender is not None:
        organisation = directory.organisations.get(sender)
        out["sender_name"] = organisation.name_in(language) if organisation else None
    if role is not None:
        out["role_title"] = role_title(view, role, language)
    return out


def channel_title(view: View, channel: str, language: str | None) -> str:
    """The channel's title in ``language``, else its default; the id for an unknown channel."""
    found = view.policies.channels.get(channel)
    return pick(found.title, found.titles, language) if found else channel


def role_title(view: View, role: str, language: str | None) -> str | None:
    found = view.directory.roles.get(role)
    return found.title_in(language) if found else None


def jurisdiction_name(view: View, jurisdiction: str, language: str | None) -> str | None:
    found = view.directory.jurisdictions.get(jurisdiction)
    return found.name_in(language) if found else None


def ack_deadline(view: View, channel: str, sent_at: datetime) -> str | None:
    """When an acknowledgement is due: the channel's ``ack_deadline_hours`` after the notice was
    sent (where escalation counts from), or None when the channel sets no deadline."""
    found = view.policies.channels.get(channel)
    if found is None or not found.ack_deadline_hours:
        return None
    return _time(sent_at + timedelta(hours=found.ack_deadline_hours))


def _time(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def named_item(view: View, item: InboxItem, language: str | None = None) -> dict[str, str | None]:
    """The names and deadline of one inbox item (``InboxItem``)."""
    return {
        **names(
            view,
            channel=item.channel,
            jurisdiction=item.jurisdiction,
            sender=item.sender,
            role=item.role,
            language=language,
        ),
        "ack_deadline": ack_deadline(view, item.channel, item.created_at),
    }
