import io
import json
import os
import subprocess
import sys

from broker.logs import configure_logging, get_logger


def test_secrets_and_contents_are_redacted_from_log_lines() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    get_logger("t").info(
        "notice_accepted",
        notice_id="n1",
        body="returnees to Kumanovo",
        subject="secret subject",
        access_token="eyJ...",
        signing_key="k",
        channel="c",
    )
    line = json.loads(stream.getvalue())
    assert line["notice_id"] == "n1" and line["channel"] == "c"
    for field in ("body", "subject", "access_token", "signing_key"):
        assert line[field] == "[redacted]"
    assert "Kumanovo" not in stream.getvalue()


def test_levels_below_the_configured_one_are_dropped() -> None:
    stream = io.StringIO()
    configure_logging("warning", "json", stream)
    get_logger("t").info("quiet")
    get_logger("t").warning("loud")
    assert [json.loads(x)["event"] for x in stream.getvalue().splitlines()] == ["loud"]


def test_processes_sharing_one_pipe_write_whole_lines() -> None:
    """`serve --workers N`: every worker logs to the one stderr its supervisor was given. Each
    line must be a single write, or two workers logging at once (a reload reaches both at the
    same instant) splice their JSON into one line a log shipper cannot read."""
    script = (
        "import sys\n"
        "from broker.logs import configure_logging, get_logger, label_process\n"
        "configure_logging('info', 'json')\n"
        "label_process(worker=int(sys.argv[1]))\n"
        "log = get_logger('t')\n"
        "for n in range(3000):\n"
        "    log.info('policy_reloaded', n=n, policy_hash='sha256:' + 'ab' * 32)\n"
    )
    read, write = os.pipe()
    # Unbuffered, as the container image runs the broker (PYTHONUNBUFFERED=1): print then
    # writes the line and its newline apart; a line-buffered stderr joins them itself.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    children = [
        subprocess.Popen([sys.executable, "-c", script, str(k)], stderr=write, env=env)
        for k in (0, 1)
    ]
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        lines = pipe.read().decode().splitlines()
    for child in children:
        assert child.wait(timeout=60) == 0
    events = [json.loads(line) for line in lines]  # a spliced line does not parse
    assert sorted((e["worker"], e["n"]) for e in events) == [
        (k, n) for k in (0, 1) for n in range(3000)
    ]
