"""The fault suite's closing table, from the figures each fault test handed over in its report.

Each test's ``Figures`` travel as a plain dict in the teardown report's ``user_properties``, so
they reach the process that prints the summary whether the suite runs in one process or in
pytest-xdist workers. The table also goes to ``tests/_artifacts/fault-figures.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fault.harness import SCALE, Figures

KEY = "fault_figures"
ARTIFACTS = Path(__file__).resolve().parents[1] / "_artifacts"


def as_record(f: Figures) -> dict[str, Any]:
    return {
        "name": f.name,
        "operations": f.operations,
        "outcomes": dict(f.outcomes),
        "faults": f.faults,
        "bad_inputs": f.bad_inputs,
        "lost": f.lost,
        "duplicated": f.duplicated,
        "leaked": f.leaked,
        "recoveries": [{"what": w, "seconds": round(s, 3)} for w, s in f.recoveries],
    }


def write_summary(terminalreporter: pytest.TerminalReporter, records: list[dict[str, Any]]) -> None:
    if not records:
        return
    records = sorted(records, key=lambda r: str(r["name"]))  # workers finish in any order
    write = terminalreporter.write_line
    terminalreporter.section(f"fault suite figures (scale {SCALE})")
    write(f"{'test':62} {'ops':>5} {'ok':>5} {'fail':>5} {'unkn':>5} {'faults':>6} {'bad in':>7}")
    for r in records:
        out = r["outcomes"]
        write(
            f"{r['name'][:62]:62} {r['operations']:>5} {out.get('ok', 0):>5} "
            f"{out.get('failed', 0):>5} {out.get('unknown', 0):>5} {r['faults']:>6} "
            f"{r['bad_inputs']:>7}"
        )
    total = {
        what: sum(int(r[key]) for r in records)
        for what, key in (
            ("operations", "operations"),
            ("faults_injected", "faults"),
            ("bad_inputs", "bad_inputs"),
            ("lost", "lost"),
            ("duplicated", "duplicated"),
            ("leaked", "leaked"),
        )
    }
    for r in records:
        for rec in r["recoveries"]:
            write(f"recovery: {r['name'][:50]:50} {rec['what']:26} {rec['seconds']:7.2f} s")
    write(
        f"total: {total['operations']} operations, {total['faults_injected']} faults injected, "
        f"{total['bad_inputs']} bad inputs; notices lost {total['lost']}, duplicated "
        f"{total['duplicated']}, leaked {total['leaked']}"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "fault-figures.json").write_text(
        json.dumps({"scale": SCALE, "total": total, "tests": records}, indent=2)
    )
