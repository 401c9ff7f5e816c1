"""structlog set-up: one canonical line per request, JSON off a terminal, and redaction.

Invariant: keys, tokens, signatures and notice contents never reach a log line. Callers log ids
and outcomes only; the redaction processor is the safety net for a field that slips through.

structlog is imported when a line is logged or logging is configured, not when a module asks
for its logger: the store's modules hold one each, and a ``liaison`` command that only reads the
store would otherwise load structlog (and whatever it loads, e.g. rich) without writing a line.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

# Field names whose values must never be written, whatever their content.
REDACTED_FIELDS = frozenset(
    {
        "authorization",
        "body",
        "ciphertext",
        "content",
        "key",
        "password",
        "payload",
        "private_key",
        "secret",
        "signature",
        "subject",
        "token",
        "assertion",
        "wrap",
    }
)
REDACTED = "[redacted]"


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for name in list(event):
        lowered = name.lower()
        if lowered in REDACTED_FIELDS or lowered.endswith(("_token", "_key", "_secret")):
            event[name] = REDACTED
    return event


_PROCESS: dict[str, Any] = {}  # fields every line of this process carries (a worker's number)


def label_process(**fields: Any) -> None:
    """Add ``fields`` to every later log line of this process (``serve --workers``: ``worker``)."""
    _PROCESS.update(fields)


def _process_fields(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for name, value in _PROCESS.items():
        event.setdefault(name, value)
    return event


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog once for the process: console on a TTY, JSON lines otherwise."""
    import structlog

    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _process_fields,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            structlog.processors.format_exc_info
            if use_json
            else structlog.processors.StackInfoRenderer(),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_level_number(level)),
        # One write per line (the line and its newline together): the workers of `serve
        # --workers N` share one stderr, and print's two writes let their lines splice.
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    # Libraries (aiohttp) log through the standard library: route them through the same
    # renderer and redaction instead of Python's bare last-resort handler.
    root = logging.getLogger()
    root.handlers = [_ToStructlog()]
    root.setLevel(logging.WARNING)


class _ToStructlog(logging.Handler):
    """Standard-library records as structlog events. A malformed HTTP request (a header too
    long, a broken request line) is the client's mistake, answered 400 already: one line with
    its status, not a traceback in the operator's log."""

    def emit(self, record: logging.LogRecord) -> None:
        import structlog

        log = structlog.get_logger(record.name)
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and type(error).__module__ == "aiohttp.http_exceptions":
            log.warning("bad_http_request", status=getattr(error, "code", 400))
            return
        log.log(record.levelno, "library_message", message=record.getMessage(), exc_info=error)


def _level_number(level: str) -> int:
    number = logging.getLevelName(level.upper())
    return number if isinstance(number, int) else logging.INFO


def get_logger(name: str) -> Any:
    return _Logger(name)


class _Logger:
    """``structlog.get_logger(name)``, made on first use. That is itself a lazy proxy which
    reads the configuration at every call, so a logger made before ``configure_logging``
    logs as configured, as before."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: Any = None

    def __getattr__(self, attribute: str) -> Any:
        if attribute in ("_name", "_logger"):  # not set yet (a copy made without __init__)
            raise AttributeError(attribute)
        if self._logger is None:
            import structlog

            self._logger = structlog.get_logger(self._name)
        return getattr(self._logger, attribute)
