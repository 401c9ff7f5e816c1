"""Attacker: a focal point, and an auditor of another country, reading the continuity report.

A real broker on loopback (SQLite and PostgreSQL). ``GET /v1/directory/continuity`` answers
contacts Cedar lets read the audit log, with only the jurisdictions of their audit scope: the
Macedonian ombudsperson sees Kumanovo's roles and nothing Bosnian; the Bosnian one asking for
Kumanovo gets a 404 as if it did not exist; a focal point gets a 403. Each read is audited.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.client.errors import RecipientError
from tests.integration.intake_support import Broker, running_broker

BA, MK = "ba-ombudsman-auditor", "mk-ombudsman-auditor"


@pytest.fixture
async def broker(demo_dir: Path, database_url: str) -> AsyncIterator[Broker]:
    async with running_broker(demo_dir, database_url) as running:
        yield running


async def test_an_auditor_reads_the_report_of_their_own_country_only(broker: Broker) -> None:
    async with broker.recipient(MK) as auditor:
        report = await auditor.continuity_report()
        places = {g["jurisdiction"] for g in report["jurisdictions"]}
        assert "mk-kumanovo" in places
        assert all(p == "mk" or p.startswith("mk-") for p in places), places
        kumanovo = (await auditor.continuity_report("mk-kumanovo"))["jurisdictions"]
        assert [g["name"] for g in kumanovo] == ["Kumanovo"]
        pcve = {r["role"]: r for r in kumanovo[0]["roles"]}["mk-kumanovo.pcve-focal-point"]
        assert pcve["holder_names"] and pcve["flags"] == []
        assert report["channels"]["returnee-repatriation"] == "Returnee repatriation"
    async with broker.recipient(BA) as other:
        text = json.dumps(await other.continuity_report())
        assert "mk-kumanovo" not in text and "Kumanovo" not in text
        with pytest.raises(RecipientError) as hidden:
            await other.continuity_report("mk-kumanovo")
        assert hidden.value.status == 404
    reads = await broker.rows(
        "select body from audit_event where body like :a", a='%"continuity.read"%'
    )
    assert len(reads) == 3
    actors = {json.loads(r.body)["actor"] for r in reads}
    assert actors == {f"contact:{MK}", f"contact:{BA}"}


async def test_a_focal_point_may_not_read_the_report(broker: Broker) -> None:
    async with broker.recipient("mk-kumanovo-pcve") as pcve:
        with pytest.raises(RecipientError) as refused:
            await pcve.continuity_report()
        assert refused.value.status == 403
