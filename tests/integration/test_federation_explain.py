"""`liaison policy check` and `explain` with a peer agreement, the way an operator runs them.

The demo data directory plays Kosovo's broker (its directory holds the region, so a notice of a
Kosovo agency for Kumanovo is a crossing); the deploy example is its agreement with North
Macedonia. Explain says whether the notice may cross, and why not (forwarding: test_federation_forward).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import POLICIES
from tests.support import run_cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "federation" / "peer-agreement.yaml"
AT = "2026-12-02T09:00:00Z"


def with_agreement(demo_dir: Path) -> Path:
    peers = demo_dir / "policies" / "peers"
    peers.mkdir()
    shutil.copy(EXAMPLE, peers / "mk.yaml")
    return demo_dir


def notice(tmp_path: Path, **changes: object) -> Path:
    document = json.loads((POLICIES / "examples" / "returnee-repatriation.json").read_text())
    document.update(changes)
    path = tmp_path / "notice.json"
    path.write_text(json.dumps(document))
    return path


def explain(data: Path, document: Path, sender: str, *extra: str) -> tuple[int, str, str]:
    result = run_cli(
        "policy", "explain", "--data", data, document, "--as", sender, "--at", AT, *extra
    )
    return result.returncode, result.stdout, result.stderr


def test_policy_check_counts_and_accepts_the_example_agreement(demo_dir: Path) -> None:
    with_agreement(demo_dir)
    result = run_cli("policy", "check", demo_dir / "policies")
    assert result.returncode == 0, result.stderr
    assert "5 channels, 22 Cedar policies, 1 peer(s), valid (sha256:" in result.stdout


def test_policy_check_refuses_red_across_a_border_in_one_line_per_problem(
    demo_dir: Path,
) -> None:
    with_agreement(demo_dir)
    peer = demo_dir / "policies" / "peers" / "mk.yaml"
    text = peer.read_text().replace("markings: [AMBER]", "markings: [AMBER, RED]")
    peer.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "[AMBER, RED]" in t)
    result = run_cli("policy", "check", demo_dir / "policies")
    assert result.returncode == 1
    assert (
        f"policies/peers/mk.yaml:{line}: agreement/crossings/2/markings: TLP:RED never crosses "
        "a border"
    ) in result.stderr


def test_kosovo_security_service_may_send_a_returnee_notice_to_kumanovo(
    demo_dir: Path, tmp_path: Path
) -> None:
    with_agreement(demo_dir)
    code, out, err = explain(demo_dir, notice(tmp_path), "xk-aki", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["allowed"] and report["peer"] == "mk"
    assert report["agreement"] == "xk-mk-2026-returnees" and report["agreement_crossing"] == 1
    assert "forwarded to the peer" in report["forwarding"]


def test_a_crossing_without_an_agreement_is_refused_and_explained(
    demo_dir: Path, tmp_path: Path
) -> None:
    with_agreement(demo_dir)
    hate = json.loads((POLICIES / "examples" / "hate-incident.json").read_text())
    hate["jurisdiction"] = "mk-kumanovo"
    path = tmp_path / "hate.json"
    path.write_text(json.dumps(hate))
    code, out, err = explain(demo_dir, path, "xk-kp")
    assert code == 1
    assert "may NOT cross" in out and "no agreement with mk for hate-incident (to send)" in out
    assert err.strip() == (
        "liaison: crossing refused: no agreement with mk for hate-incident (to send)"
    )


def test_a_country_with_no_peer_and_a_municipality_outside_the_agreement_are_refused(
    demo_dir: Path, tmp_path: Path
) -> None:
    with_agreement(demo_dir)
    code, _, err = explain(demo_dir, notice(tmp_path, jurisdiction="ba-brcko"), "xk-aki")
    assert code == 1 and "no peer agreement covers ba" in err
    code, _, err = explain(demo_dir, notice(tmp_path, jurisdiction="rs-nis-unknown"), "xk-aki")
    assert code == 1 and "no peer agreement covers rs-nis-unknown" in err


def test_without_agreements_nothing_crosses(demo_dir: Path, tmp_path: Path) -> None:
    code, out, err = explain(demo_dir, notice(tmp_path), "xk-aki")
    assert code == 1 and "no peer agreement covers mk" in err, (out, err)


def test_a_notice_that_stays_in_the_country_is_explained_as_before(
    demo_dir: Path, tmp_path: Path
) -> None:
    with_agreement(demo_dir)
    code, out, err = explain(demo_dir, notice(tmp_path), "mk-mvr")
    assert code == 0, err
    assert "Would receive (2):" in out and "cross" not in out
