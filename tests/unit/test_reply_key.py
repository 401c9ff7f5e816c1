"""The key a reply to a notice of this country is sealed to (adapters/client/verify.py).

Attacker: the broker's own host, which offers an X25519 key of its own as the sending agency's
reply key, to read the reply. The client seals only to a key the administrators bound to that
agency, active.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.client.errors import VerificationFailed
from adapters.client.verify import local_reply_key
from broker.trust.core import Binding, KeyBindings

AGENCY = b"\x01" * 32


def bindings(**changes: str) -> KeyBindings:
    fields = {"owner": "mk-mvr", "owner_kind": "organisation", "type": "x25519", "status": "active"}
    fields.update(changes)
    key = Binding("mk-mvr.x25519.1", fields["owner"], "Ministry", fields["owner_kind"],
                  fields["type"], AGENCY, fields["status"])  # fmt: skip
    return KeyBindings(1, datetime(2099, 1, 1, tzinfo=UTC), {key.key_id: key})


def test_the_agencys_bound_key_is_taken() -> None:
    local_reply_key(bindings(), "mk-mvr", ("mk-mvr.x25519.1", AGENCY))


@pytest.mark.parametrize(
    ("offered", "signed"),
    [
        (("mk-mvr.x25519.1", b"\x02" * 32), {}),  # the host's own key under the agency's id
        (("host.x25519", AGENCY), {}),  # an id the bindings do not hold
        (("mk-mvr.x25519.1", AGENCY), {"owner": "mk-anb"}),  # another agency's key
        (("mk-mvr.x25519.1", AGENCY), {"owner_kind": "contact"}),
        (("mk-mvr.x25519.1", AGENCY), {"type": "ed25519"}),
        (("mk-mvr.x25519.1", AGENCY), {"status": "revoked"}),
    ],
)
def test_any_other_key_is_refused(offered: tuple[str, bytes], signed: dict[str, str]) -> None:
    with pytest.raises(VerificationFailed, match="not the sending agency's in the signed"):
        local_reply_key(bindings(**signed), "mk-mvr", offered)
