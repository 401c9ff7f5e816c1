"""The HTTP server: aiohttp's, with the answers of its own parser as problem+json.

aiohttp refuses a request it cannot parse (a header field or line over ``limits.max_header_bytes``,
a broken request line) in its parser, before any middleware runs, and by default answers in
text/plain, quoting the offending bytes. Here those answers are problem+json like every other:

- a header field or line over the limit: 431 ``header_too_large``;
- anything else unparsable: 400 ``bad_request``; a failure outside the middleware: 500;
- no answer and no log line holds a byte of the request.

``ProblemAppRunner`` is the runner to serve the app with; ``serve`` runs it until SIGINT/SIGTERM;
``tune_gc`` sets the serving process's garbage collection.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import signal
import socket
import ssl
from collections.abc import Callable

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler

from broker.errors import ConfigError, HeaderTooLarge
from broker.http.keys import STARTUP
from broker.http.problems import from_error, problem
from broker.logs import get_logger

log = get_logger("liaison.http")
KEEPALIVE_SECONDS = 75  # as aiohttp's run_app
BACKLOG = 128  # as aiohttp's TCPSite


class ProblemRequestHandler(RequestHandler):
    """aiohttp's connection handler; only its error answer differs."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # some data already sent: the connection is broken
            raise ConnectionError("the answer had begun; no error answer can follow")
        if status >= 500:
            log.error("request_failed", status=status, error=type(exc).__name__, exc_info=exc)
            response = problem(
                "internal_error", "the broker could not complete this request", status=status
            )
        elif isinstance(exc, LineTooLong):
            log.info("request_unparsable", error=type(exc).__name__)
            response = from_error(HeaderTooLarge("a header field or line is too large"), None)
        else:
            log.info("request_unparsable", status=status, error=type(exc).__name__)
            response = problem("bad_request", "the request could not be parsed", status=status)
        response.force_close()
        return response


class _ProblemServer(web.Server):
    def __call__(self) -> RequestHandler:
        return ProblemRequestHandler(self, loop=self._loop, **self._kwargs)


class ProblemAppRunner(web.AppRunner):
    """An ``AppRunner`` whose connections answer parser errors with problem+json."""

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return _ProblemServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            **plain._kwargs,
        )


# CPython's default (700, 10, 10) collects the youngest generation every 700 net container
# allocations and the whole heap every ~100 of those (when it grew by a quarter): a broker
# holding its directory, policies, Cedar entities and thousands of streams spent 0.54 s of a
# 6 s intake run and 1.55 s of three broadcasts to 2,000 in collections, nine of them full, each
# stopping the event loop for 80-200 ms (make bench's A/B, 2026-12-06). Objects here are freed by
# reference counting; the cyclic collector only has cycles to find, which these thresholds still
# find within 50,000 net allocations (young) and 10 million (whole heap): 0.09 s and 0.21 s.
GC_THRESHOLDS = (50_000, 20, 10)


def tune_gc() -> None:
    """The serving process's collector thresholds (``GC_THRESHOLDS``); the CLI's own runs keep
    the defaults."""
    gc.set_threshold(*GC_THRESHOLDS)


async def serve(
    app: web.Application,
    *,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    shutdown_timeout: float,
    sock: socket.socket | None = None,
    listening: Callable[[], None] | None = None,
) -> None:
    """Serve ``app`` until SIGINT or SIGTERM, then shut down in order (cleanup_ctx included).

    The port is bound before the app starts: on a busy port this raises ``ConfigError`` before
    any start-up step (the pid file and control socket of the broker there stay untouched). With
    ``sock`` (a worker of ``liaison serve --workers``) it serves that listening socket instead;
    ``listening`` is called once it accepts connections and the broker is ready."""
    sock = sock if sock is not None else bind(host, port)
    if STARTUP in app:  # the control socket and pid file are named after the port bound
        app[STARTUP].port = sock.getsockname()[1]
        if listening is not None:  # a worker tells its supervisor when it can serve
            app[STARTUP].on_ready.append(listening)
            listening = None
    runner = ProblemAppRunner(
        app,
        handle_signals=False,
        shutdown_timeout=shutdown_timeout,
        keepalive_timeout=KEEPALIVE_SECONDS,
    )
    try:
        await runner.setup()
    except BaseException:
        sock.close()
        raise
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop.set)
    try:
        await web.SockSite(runner, sock, ssl_context=ssl_context, backlog=BACKLOG).start()
        if STARTUP in app:
            app[STARTUP].listening_now()
        if listening is not None:
            listening()
        await stop.wait()
    finally:
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(number)
        await runner.cleanup()


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, not yet listening (the site listens once the app has
    started, so a client never connects to a broker still starting); ``ConfigError`` (one line)
    when a listening socket holds the port already."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio does
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"{host}:{port} is already in use (another broker?); nothing was started"
            ) from e
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror}") from e
    return sock
