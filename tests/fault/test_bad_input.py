"""Bad input: schemathesis against /openapi.json, and fuzzing of the parsers and the loaders.

Every answer the running broker gives to generated requests must be documented, a problem
document on error, and never a 5xx; the request-signature and digest parsers, the policy loader
and the directory loader must refuse garbage with their own errors, never crash.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.crypto.httpsig import HttpRequestView, SignatureInvalid, digest_matches, verify_request
from broker.crypto.keys import read_private_key
from broker.directory.load import parse_directory_text
from broker.errors import DirectoryFileError, PolicyFileError
from broker.policy.load import load_policies
from tests.fault.harness import SCALE, BrokerProcess, Figures
from tests.support import recipient

ROOT = Path(__file__).resolve().parents[2]
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
EXAMPLES = 10 * SCALE  # per operation, beside the coverage phase's own boundary cases
# Each of the four runs (anonymous, token, auditor, agency) stops by then: at most 48 s in all in
# the suite (its 15-minute budget), LIAISON_FAULT_SCALE times as long in the long form.
MAX_SECONDS = 12 * SCALE
AGENCY = "mk-anb"  # may publish returnee-repatriation in mk-kumanovo: the example is a 201


def _schemathesis(
    url: str,
    *extra: str,
    workdir: Path,
    env: dict[str, str] | None = None,
    phases: str = "examples,coverage,fuzzing",
) -> tuple[int, str]:
    code, output = _schemathesis_once(url, *extra, workdir=workdir, env=env, phases=phases)
    for _ in range(2):
        if code == 0 or INTERPRETER_BUG not in output:
            break
        # The tool's own crash, not a finding: again, in one worker thread.
        code, output = _schemathesis_once(
            url, *extra, workdir=workdir, env=env, phases=phases, workers=1
        )
    return code, output


# CPython 3.11.7's ast.parse sometimes fails this way inside schemathesis's coverage phase, where
# hypothesis describes a filter's lambda from its source (CPython gh-106905: an error path leaves
# the AST recursion depth unbalanced, reported from threaded programs; fixed in later releases).
# It says nothing about the broker. Seen in one of three runs of this test here.
INTERPRETER_BUG = "SystemError: AST constructor recursion depth mismatch"


def _schemathesis_once(
    url: str,
    *extra: str,
    workdir: Path,
    env: dict[str, str] | None,
    phases: str,
    workers: int = 2,
) -> tuple[int, str]:
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            f"{url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            str(EXAMPLES),
            "--seed",
            "20261201",
            "--max-time",
            str(MAX_SECONDS),
            "--workers",
            str(workers),
            "--request-timeout",
            "10",
            "--phases",
            phases,  # stateful only where the run selects both ends of a link
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120 * SCALE + 60,
        cwd=workdir,
        env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false", **(env or {})},
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def _generated(output: str) -> int:
    found = re.search(r"(\d+) generated", output)
    return int(found.group(1)) if found else 0


async def test_schemathesis_finds_no_5xx_and_nothing_undocumented(
    demo_dir: Path, tmp_path: Path, figures: Figures
) -> None:
    if not SCHEMATHESIS.exists():
        pytest.fail("schemathesis is a test dependency; install the test extra")
    broker = BrokerProcess(demo_dir)
    broker.start()
    try:
        await broker.ready()
        code, output = _schemathesis(
            broker.url,
            "--exclude-path-regex",
            "^/v1/(token|witness/add-checkpoint)$",
            workdir=tmp_path,
        )
        figures.bad_inputs += _generated(output)
        assert code == 0, output[-6000:]
        # The token endpoint and the witness's add-checkpoint on their own: RFC 6749 §5.2 answers
        # 400 invalid_grant for an assertion that does not verify, and c2sp.org/tlog-witness 400
        # for a body that is not `old N`, proof lines and a signed note, neither of which a schema
        # can tell from a valid one, so a schema-valid 400 there is right; every other check (no
        # 5xx, documented answers) still applies.
        code, output = _schemathesis(
            broker.url,
            "--include-path-regex",
            "^/v1/(token|witness/add-checkpoint)$",
            "--exclude-checks",
            "positive_data_acceptance",
            workdir=tmp_path,
        )
        figures.bad_inputs += _generated(output)
        assert code == 0, output[-6000:]
        # Again as an auditor: the audit API's filters, cursors and proofs get real answers.
        async with recipient(demo_dir, broker.url, "mk-ombudsman-auditor") as auditor:
            token = await auditor.token()
        code, output = _schemathesis(
            broker.url,
            "--include-path-regex",
            "^/v1/audit/",
            "--header",
            f"Authorization: Bearer {token}",
            # seq <= size <= the log's size cannot be said in OpenAPI: such a request is
            # schema-valid and rightly refused (422), which this check would count against us.
            "--exclude-checks",
            "ignored_auth,positive_data_acceptance",
            workdir=tmp_path,
        )
        figures.bad_inputs += _generated(output)
        assert code == 0, output[-6000:]
        # Again as an agency: each request signed (RFC 9421) over the bytes sent, so generated
        # notices meet the notice checks and the status endpoint answers past authentication.
        code, output = _schemathesis(
            broker.url,
            "--include-path-regex",
            "^/v1/notices(/\\{id\\}/status)?$",
            # A schema-valid notice names channels and jurisdictions the policies do not have,
            # or ones this agency may not publish to: 422 and 403 are right answers to it.
            "--exclude-checks",
            "positive_data_acceptance",
            workdir=tmp_path,
            phases="examples,coverage,fuzzing,stateful",  # POST's 201 links to its status
            env={
                "PYTHONPATH": str(ROOT),
                "SCHEMATHESIS_HOOKS": "tests.fault.schemathesis_signing",
                "LIAISON_SCHEMATHESIS_KEY": str(demo_dir / "keys" / f"{AGENCY}.pem"),
                "LIAISON_SCHEMATHESIS_KEYID": read_private_key(
                    demo_dir / "keys" / f"{AGENCY}.pem"
                ).key_id(AGENCY),
            },
        )
        figures.bad_inputs += _generated(output)
        assert code == 0, output[-6000:]
    finally:
        broker.stop()
    answered = [json.loads(line) for line in broker.output().splitlines() if line.startswith("{")]
    statuses: dict[tuple[str, str], set[int]] = {}
    for e in answered:
        if e.get("event") == "request_handled":
            path = re.sub(r"^/v1/notices/[^/]+/status$", "status", str(e.get("path")))
            statuses.setdefault((str(e.get("method")), path), set()).add(int(e["status"]))
    # Past authentication: a notice posted (the channel's example), and status answered for a
    # notice (200) or not this agency's (404: given only once the signature verified).
    assert 201 in statuses[("POST", "/v1/notices")], statuses
    assert statuses[("GET", "status")] & {200, 404}, statuses


HEADER_TEXT = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=300
) | st.sampled_from(
    [
        'sig1=("@method" "@target-uri");created=1;keyid="k";alg="ed25519";nonce="n"',
        "sig1=:AAAA:",
        'sig1=("@method");created=9999999999999999999999',
        "sig1=();keyid=",
    ]
)


@settings(max_examples=300 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(signature_input=HEADER_TEXT, signature=HEADER_TEXT, digest=HEADER_TEXT)
def test_the_request_signature_parsers_refuse_garbage_with_their_own_error(
    signature_input: str, signature: str, digest: str
) -> None:
    headers = {
        "signature-input": signature_input,
        "signature": signature,
        "content-digest": digest,
        "content-type": "application/json",
    }
    request = HttpRequestView("POST", "http://127.0.0.1/v1/notices", headers)
    with pytest.raises(SignatureInvalid):
        verify_request(
            request,
            lookup_key=lambda _: bytes(32),
            now=1,
            max_skew=300,
            required=[("@method", "@target-uri", "content-type", "content-digest")],
        )
    assert digest_matches(digest, b"{}") in (True, False)


YAML_NOISE = st.text(max_size=400) | st.builds(
    lambda head, tail: head + tail,
    st.sampled_from(
        [
            "id: x\n",
            "id: returnee-repatriation\ntitle: t\nmarking: RED\n",
            "jurisdictions:\n  - {id: a, level: country}\n",
            "- [\n",
            "a: &x [*x]\n",
            "!!python/object:os.system {}\n",
        ]
    ),
    st.text(max_size=200),
)


@settings(max_examples=150 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(channel=YAML_NOISE)
def test_the_policy_loader_refuses_a_broken_channel_file_by_name(channel: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "policies"
        shutil.copytree(ROOT / "policies", root, ignore=shutil.ignore_patterns("demo", "examples"))
        (root / "channels" / "returnee-repatriation.yaml").write_text(channel)
        problems: tuple[object, ...] = ()
        try:
            load_policies(root)
        except PolicyFileError as e:
            problems = tuple(e.problems)
    assert all(p.file and p.line >= 1 and p.reason for p in problems)  # type: ignore[attr-defined]


@settings(max_examples=200 * SCALE, deadline=None)
@given(text=YAML_NOISE)
def test_the_directory_loader_refuses_garbage_by_line(text: str) -> None:
    problems: tuple[object, ...] = ()
    try:
        parse_directory_text(text, "directory.yaml")
    except DirectoryFileError as e:
        problems = tuple(e.problems)
    assert all(p.line >= 1 and p.reason for p in problems)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "text",
    [
        "jurisdictions: &loop [*loop]\n",  # never ends
        "a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: &c [*b, *b, *b]\n",  # multiplies
    ],
)
def test_yaml_aliases_of_lists_and_mappings_are_refused_by_line(text: str) -> None:
    with pytest.raises(DirectoryFileError) as caught:
        parse_directory_text(text, "directory.yaml")
    assert "aliases" in str(caught.value) and str(caught.value).startswith("directory.yaml:1:")
