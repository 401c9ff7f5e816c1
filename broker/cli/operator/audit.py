"""The operator's audit export: the local store's log, signed as the running broker signs it.

``liaison audit export`` without ``--url``/``--as`` and ``liaison keys monitor --data`` read the
log here, with the log's checkpoint keys from the data directory.
"""

from __future__ import annotations

import argparse
import getpass
import os
from datetime import UTC, datetime
from typing import Any

from broker.cli.common import open_store


async def write_lines(lines: Any, out: Any) -> int:
    """Copy an export to ``out``; the number of events (the header line is not one)."""
    count = -1  # the header is not an event
    async for line in lines:
        out.write(line)
        count += 1
    return count


async def local_export(args: argparse.Namespace, out: Any) -> int:
    from broker.crypto.purpose_keys import load_for
    from broker.service.audit import AuditService
    from broker.state import BrokerState

    settings, engine = await open_store(args)
    try:
        log_keys = load_for(settings, os.environ).log_keys()
        state = BrokerState(engine, settings.policies_dir, settings.limits)
        service = AuditService(
            state, log_keys, page_max=settings.audit.events_page_max, origin=settings.audit.origin
        )
        return await write_lines(
            service.export(f"operator:{getpass.getuser()}", datetime.now(UTC)), out
        )
    finally:
        await engine.dispose()
