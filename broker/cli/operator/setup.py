"""The operator's set-up commands: ``liaison init``, ``serve``, ``keygen`` and ``demo``.

``init`` and ``serve`` run under a private umask: the database (with its -wal and -shm), the
keys and the pid files are the owner's alone. ``serve`` writes ``DIR/run/liaison-<port>.pid`` so
``liaison policy reload`` can find it, and reloads the policies on SIGHUP.
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
from broker.crypto.keys import generate, write_private_key
from broker.errors import ConfigError, SourceError
from broker.logs import configure_logging
from broker.terminal import safe_print as print  # every line printed has control characters escaped

RUN_DIR = "run"  # one pid file per serving process: DIR/run/liaison-<port>.pid


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

    private_umask()  # the database, its -wal and -shm, pid files: 0600
    data = data_dir(args)
    for path in tighten(data):
        print(f"note: cannot restrict {path} to its owner", file=sys.stderr)
    env = _serve_environ(args)
    settings = load_settings(data, env)
    configure_logging(settings.logging.level, settings.logging.format)
    pid_file = data / RUN_DIR / f"liaison-{settings.server.port}.pid"
    from broker.cli.operator.workers import serve_workers, worker_count

    if (count := worker_count(settings)) > 1:  # a supervisor over `count` worker processes
        return serve_workers(
            settings, env, data, count=count, serve_one=_serve_one, pid_file=pid_file
        )
    return _serve_one(settings, env, data, pid_file=pid_file)


def _serve_one(
    settings: Any,
    env: dict[str, str],
    data: Path,
    *,
    pid_file: Path | None = None,
    worker: int = 0,
    workers: int = 1,
    sock: Any = None,
    listening: Callable[[], None] | None = None,
) -> int:
    """One serving process: the whole broker, or worker ``worker`` of ``workers`` on ``sock``."""
    from broker.app import create_app
    from broker.logs import label_process

    if workers > 1:
        label_process(worker=worker)
    app = create_app(settings, env, worker=worker, workers=workers)
    app.cleanup_ctx.append(_reload_on_sighup(pid_file))
    from broker.http.tls import server_context

    tls = server_context(settings)
    if sock is None:  # a supervisor says it once for all its workers
        print(
            f"Liaison listening on {'https' if tls else 'http'}://{settings.server.host}:{settings.server.port} "
            f"(data {data}, Ctrl-C to stop)",
            file=sys.stderr,
            flush=True,
        )
    from broker.http.server import serve

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


def _reload_on_sighup(pid_file: Path | None) -> Callable[[Any], AsyncIterator[None]]:
    """A cleanup context: SIGHUP reloads the policies; the pid file says where to send it
    (None: a worker, whose supervisor owns the pid file and passes SIGHUP on)."""

    # A few bytes on the local data directory, written once before the broker listens and removed
    # once after it stops: not worth a thread (hence the ASYNC240 exceptions).
    async def install_reload(app: Any) -> AsyncIterator[None]:
        from broker.http.keys import STATE

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(_reload(app[STATE])))
        try:
            if pid_file is not None:
                pid_file.parent.mkdir(exist_ok=True)
                pid_file.write_text(f"{os.getpid()}\n")  # noqa: ASYNC240 - see above
        except OSError:  # a read-only data directory (containers): reload with SIGHUP directly
            print(
                f"note: cannot write {pid_file}; `liaison policy reload` will not find this process",
                file=sys.stderr,
            )
        yield
        if pid_file is not None:
            pid_file.unlink(missing_ok=True)  # noqa: ASYNC240 - see above
        loop.remove_signal_handler(signal.SIGHUP)

    return install_reload


async def _reload(state: Any) -> None:
    from broker.logs import get_logger

    log = get_logger("liaison.cli")
    try:
        await state.reload_policies()
    except SourceError as e:
        log.error("policy_reload_refused", problems=[str(p) for p in e.problems])


def cmd_keygen(args: argparse.Namespace) -> int:
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

    keep = Path(args.keep) if args.keep else None
    if keep is not None and keep.exists():
        raise ConfigError(f"{keep} exists; --keep needs a new directory")
    configure_logging("warning", "console")  # the narration is the output; warnings still show
    ok = asyncio.run(run_demo(lambda line: print(line, flush=True), keep))
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
