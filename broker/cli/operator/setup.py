"""The operator's set-up commands: ``liaison init``, ``serve``, ``keygen`` and ``demo``.

``init`` and ``serve`` run under a private umask: the database (with its -wal and -shm), the
keys and the pid files are the owner's alone. ``serve`` binds its port first (a busy port stops
it before it touches anything), then opens its control socket ``DIR/run/liaison-<port>.sock``
and pid file (``broker/control.py``) so ``liaison policy reload`` can reach it and prove it is
this broker; it reloads the policies on SIGHUP too. It says "listening" once it is ready.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from broker.cli.common import EXIT_FAILED, EXIT_OK, command, data_dir, data_option
from broker.config import load_settings
from broker.errors import ConfigError, LiaisonError, SourceError
from broker.terminal import safe_print as print  # every line printed has control characters escaped

RUN_DIR = "run"  # per serving process: DIR/run/liaison-<port>.pid and .sock (0700 folder)


def cmd_init(args: argparse.Namespace) -> int:
    from broker.datafiles import private_umask
    from broker.service.setup import init_data_dir

    private_umask()
    result = asyncio.run(
        init_data_dir(
            Path(args.dir),
            demo=args.demo,
            now=datetime.now(UTC),
            environ=os.environ,
            port=args.port,
            escrow_kek=args.escrow_kek,
            public_url=args.public_url or "",
        )
    )
    applied = result.directory
    print(f"Created Liaison data directory {result.data_dir}")
    print(f"  {result.keys_written} private keys under {result.data_dir / 'keys'} (mode 0600)")
    print(f"  directory revision {applied.revision}: {applied.diff.summary()}")
    print(f"  escrow key sealed under the KEK {result.escrow_kek} (keep it off the data directory)")
    print(f"\nStart it with:  liaison serve --data {result.data_dir}")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:

    from broker.datafiles import private_umask, tighten
    from broker.logs import configure_logging

    private_umask()  # the database, its -wal and -shm, pid files: 0600
    data = data_dir(args)
    for path in tighten(data):
        print(f"note: cannot restrict {path} to its owner", file=sys.stderr)
    env = _serve_environ(args)
    settings = load_settings(data, env)
    configure_logging(settings.logging.level, settings.logging.format)
    from broker.cli.operator.workers import serve_workers, worker_count

    if (count := worker_count(settings)) > 1:  # a supervisor over `count` worker processes
        return serve_workers(settings, env, data, count=count, serve_one=_serve_one)
    return _serve_one(settings, env, data)


def _serve_one(
    settings: Any,
    env: dict[str, str],
    data: Path,
    *,
    worker: int = 0,
    workers: int = 1,
    sock: Any = None,
    listening: Callable[[], None] | None = None,
) -> int:
    """One serving process: the whole broker, or worker ``worker`` of ``workers`` on ``sock``.

    The control socket and pid file belong to the one process, or to worker 0 of several (a
    reload through it reaches every worker: it asks the supervisor to pass SIGHUP on); the
    other workers reload on the SIGHUP their supervisor passes them."""
    from broker.app import create_app
    from broker.http.keys import STARTUP
    from broker.logs import label_process

    if workers > 1:
        label_process(worker=worker)
    app = create_app(settings, env, worker=worker, workers=workers)
    if worker == 0:
        app.cleanup_ctx.append(_control(data / RUN_DIR, supervised=workers > 1))
    else:
        app.cleanup_ctx.append(_reload_on_sighup())
    from broker.http.tls import server_context

    tls = server_context(settings)
    if sock is None:  # a supervisor says it once for all its workers
        where = f"{'https' if tls else 'http'}://{settings.server.host}:{settings.server.port}"
        app[STARTUP].on_ready.append(  # only once it can serve: its store reached, policies loaded
            lambda: print(
                f"Liaison listening on {where} (data {data}, Ctrl-C to stop)",
                file=sys.stderr,
                flush=True,
            )
        )
    from broker.http.server import serve, tune_gc

    tune_gc()
    asyncio.run(
        serve(
            app,
            host=settings.server.host,
            port=settings.server.port,
            ssl_context=tls,
            shutdown_timeout=10,
            sock=sock,
            listening=listening,
        )
    )
    return EXIT_OK


def _serve_environ(args: argparse.Namespace) -> dict[str, str]:
    """The environment with the command line's --host, --port and TLS files laid over it."""
    env = dict(os.environ)
    if args.host:
        env["LIAISON_SERVER_HOST"] = args.host
    if args.port is not None:
        env["LIAISON_SERVER_PORT"] = str(args.port)
    if args.workers is not None:
        env["LIAISON_SERVER_WORKERS"] = str(args.workers)
    for option in ("tls_cert", "tls_key", "client_ca"):
        if getattr(args, option):
            env[f"LIAISON_SERVER_{option.upper()}"] = str(Path(getattr(args, option)).resolve())
    return env


def _reload_on_sighup() -> Callable[[Any], AsyncIterator[None]]:
    """A cleanup context for a worker other than 0: SIGHUP (passed on by the supervisor) reloads."""

    async def install(app: Any) -> AsyncIterator[None]:
        from broker.http.keys import STATE

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(_reload(app[STATE])))
        yield
        loop.remove_signal_handler(signal.SIGHUP)

    return install


def _control(run_dir: Path, *, supervised: bool = False) -> Callable[[Any], AsyncIterator[None]]:
    """A cleanup context: the control socket and pid file in ``DIR/run`` (written only once the
    port is this process's, so a second broker on a busy port touches neither), and SIGHUP, which
    reloads the policies too (systemd's ``ExecReload``). ``supervised``: worker 0 of several,
    whose reload also asks the supervisor to pass SIGHUP to every worker."""

    async def install(app: Any) -> AsyncIterator[None]:
        from broker.control import Endpoint
        from broker.control import serve as serve_control
        from broker.http.keys import STARTUP, STATE

        endpoint = Endpoint.for_port(run_dir, app[STARTUP].port)  # the port bound, never 0
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(_reload(app[STATE])))
        server = None
        try:
            server = await serve_control(endpoint, _answer(app, supervised=supervised))
        except OSError:  # a read-only data directory (containers): reload with SIGHUP directly
            print(
                f"note: cannot write {endpoint.socket}; `liaison policy reload` will not find "
                "this process (send it SIGHUP)",
                file=sys.stderr,
            )
        yield
        if server is not None:
            server.close()
            endpoint.remove()
        loop.remove_signal_handler(signal.SIGHUP)

    return install


def _answer(app: Any, *, supervised: bool = False) -> Callable[[str], Any]:
    from broker.http.keys import STARTUP, STATE

    async def answer(command: str) -> dict[str, Any]:
        state = app[STATE]
        if command == "reload":
            if not state.loaded:
                return {"ok": False, "error": "the broker has not started: nothing to reload"}
            try:
                view = await state.reload_policies()
            except SourceError as e:
                return {"ok": False, "error": str(e.problems[0]) if e.problems else str(e)}
            except LiaisonError as e:  # the store could not record the load: nothing swapped
                return {"ok": False, "error": f"{e.code}: {e.message}"}
            if supervised:  # valid and in force here: the supervisor passes SIGHUP to every worker
                os.kill(os.getppid(), signal.SIGHUP)
            return {"ok": True, "policy_hash": view.policies.hash}
        if command == "status":
            return {
                "ok": True,
                "ready": app[STARTUP].ready,
                "waiting_for": app[STARTUP].waiting_for,
            }
        return {"ok": False, "error": f"unknown command {command[:40]!r}"}

    return answer


async def _reload(state: Any) -> None:
    from broker.logs import get_logger

    log = get_logger("liaison.cli")
    if not state.loaded:
        log.warning("policy_reload_skipped", reason="the broker has not started")
        return
    try:
        await state.reload_policies()
    except SourceError as e:
        log.error("policy_reload_refused", problems=[str(p) for p in e.problems])
    except LiaisonError as e:
        log.error("policy_reload_failed", code=e.code, reason=e.detail)


def cmd_keygen(args: argparse.Namespace) -> int:
    from broker.crypto.keys import generate, write_private_key

    pair = generate(args.type)
    out = Path(args.out)
    if out.exists():
        raise ConfigError(f"{out} exists; refusing to overwrite a key")
    write_private_key(out, pair)
    owner = args.owner or out.stem.removesuffix(".x25519")
    entry = {
        "id": pair.key_id(owner),
        "type": pair.type,
        "public": pair.public_b64,
        "status": "active",
    }
    print(
        f"Wrote {pair.type} private key to {out} (mode 0600). Add this to the owner's keys in the directory:"
    )
    print("  - " + json.dumps(entry))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from broker.demo import run_demo
    from broker.logs import configure_logging

    keep = Path(args.keep) if args.keep else None
    if keep is not None and keep.exists():
        raise ConfigError(f"{keep} exists; --keep needs a new directory")
    configure_logging("warning", "console")  # the narration is the output; warnings still show
    say = lambda line: print(line, flush=True)  # noqa: E731 - one line, named for reading
    if args.federation:
        from broker.demo_federation import run_federation_demo

        ok = asyncio.run(run_federation_demo(say, keep, once=args.once))
    else:
        ok = asyncio.run(run_demo(say, keep))
    return EXIT_OK if ok else EXIT_FAILED


def add_setup_commands(sub: Any) -> None:
    """``liaison init``, ``serve`` and ``keygen``."""
    p = command(sub, "init", cmd_init, "create a data directory, empty or with demo data")
    p.add_argument("dir", metavar="DIR")
    p.add_argument(
        "--demo", action="store_true", help="add the Western Balkans demo directory and keys"
    )
    p.add_argument(
        "--port", type=int, default=8750, help="port written into liaison.toml (default 8750)"
    )
    p.add_argument(
        "--escrow-kek",
        metavar="REF",
        help="seal the escrow key under this KEK (env:NAME or file:/path; default: a new DIR.kek)",
    )
    p.add_argument(
        "--public-url",
        metavar="URL",
        help="server.public_url written into liaison.toml: the URL clients use "
        "(default http://127.0.0.1:PORT)",
    )
    p = command(sub, "serve", cmd_serve, "run the broker")
    data_option(p)
    p.add_argument("--host", help="listen address (default from liaison.toml: 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default from liaison.toml: 8750)")
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes sharing the port (default from liaison.toml: 0, one per core)",
    )
    p.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate chain")
    p.add_argument("--tls-key", metavar="PEM", help="the certificate's private key")
    p.add_argument(
        "--client-ca", metavar="PEM", help="require agency client certificates from this CA (mTLS)"
    )
    p = command(
        sub, "keygen", cmd_keygen, "generate a key pair; write the private key as PKCS#8 PEM"
    )
    p.add_argument("--type", choices=["ed25519", "x25519"], required=True)
    p.add_argument("--out", required=True, metavar="FILE")
    p.add_argument("--owner", help="organisation or contact id the key belongs to (for the key id)")


def add_demo_command(sub: Any) -> None:
    """``liaison demo``."""
    p = command(sub, "demo", cmd_demo, "tell the whole story against a temporary embedded broker")
    p.add_argument("--keep", metavar="DIR", help="keep the demo's data directory here")
    p.add_argument(
        "--federation",
        action="store_true",
        help="two national brokers on loopback (Kosovo, North Macedonia): a notice crosses",
    )
    p.add_argument(
        "--once",
        action="store_true",
        help="with --federation: stop when the story is told (else serve on until Ctrl-C)",
    )
