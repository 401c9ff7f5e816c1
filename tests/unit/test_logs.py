import io
import json

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
