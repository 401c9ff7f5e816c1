"""The ``liaison`` command: parse, call a use case, print. Errors: one line, non-zero exit."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from broker.cli_keys import add_keys_commands
from broker.cli_text import safe
from broker.cli_text import safe_print as print  # every line printed has control characters escaped
from broker.cli_trust import add_trust_commands
from broker.config import load_settings, resolve_secret, resolved_database_url
from broker.crypto.keys import generate, load_private_key, write_private_key
from broker.errors import ConfigError, LiaisonError, SourceError
from broker.logs import configure_logging

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
RUN_DIR = "run"  # one pid file per serving process: DIR/run/liaison-<port>.pid


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_USAGE
    try:
        result: int = args.run(args)
        return result
    except SourceError as e:
        print(e.diagnostics(), file=sys.stderr)
        print(
            f"liaison: refused ({len(e.problems)} problem{'s' if len(e.problems) != 1 else ''}); "
            "nothing was changed",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except LiaisonError as e:
        print(f"liaison: {safe(e.diagnostics())}", file=sys.stderr)  # one line, whatever it quotes
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED


def _run(coro: Coroutine[Any, Any, int]) -> int:
    return asyncio.run(coro)


def _data_dir(args: argparse.Namespace) -> Path:
    path = Path(args.data or os.environ.get("LIAISON_DATA", "liaison-data"))
    if not (path / "liaison.toml").exists():
        raise ConfigError(
            f"{path} is not a Liaison data directory (run `liaison init {path}` first)"
        )
    return path


def _parse_time(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError as e:
        raise ConfigError(f"--at: not an ISO 8601 time: {text!r}") from e
    if value.tzinfo is None:
        raise ConfigError("--at: the time needs a timezone, e.g. 2026-12-01T09:00:00Z")
    return value


# -- init, serve, keygen ----------------------------------------------------------------------


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
    from aiohttp import web

    from broker.app import create_app
    from broker.datafiles import private_umask, tighten

    private_umask()  # the database, its -wal and -shm, pid files: 0600
    data = _data_dir(args)
    for path in tighten(data):
        print(f"note: cannot restrict {path} to its owner", file=sys.stderr)
    env = dict(os.environ)
    if args.host:
        env["LIAISON_SERVER_HOST"] = args.host
    if args.port is not None:
        env["LIAISON_SERVER_PORT"] = str(args.port)
    for option in ("tls_cert", "tls_key", "client_ca"):
        if getattr(args, option):
            env[f"LIAISON_SERVER_{option.upper()}"] = str(Path(getattr(args, option)).resolve())
    settings = load_settings(data, env)
    configure_logging(settings.logging.level, settings.logging.format)
    app = create_app(settings, env)
    pid_file = data / RUN_DIR / f"liaison-{settings.server.port}.pid"

    async def install_reload(app: web.Application) -> Any:
        from broker.http.keys import STATE

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(_reload(app[STATE])))
        try:
            pid_file.parent.mkdir(exist_ok=True)
            pid_file.write_text(f"{os.getpid()}\n")
        except OSError:  # a read-only data directory (containers): reload with SIGHUP directly
            print(
                f"note: cannot write {pid_file}; `liaison policy reload` will not find this process",
                file=sys.stderr,
            )
        yield
        pid_file.unlink(missing_ok=True)
        loop.remove_signal_handler(signal.SIGHUP)

    app.cleanup_ctx.append(install_reload)
    from broker.http.tls import server_context

    tls = server_context(settings)
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
        )
    )
    return EXIT_OK


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


# -- directory -----------------------------------------------------------------------------


def cmd_directory_apply(args: argparse.Namespace) -> int:
    from broker.service.directory import apply_directory_file

    async def run() -> int:
        settings, engine = await _open_store(args)
        try:
            result = await apply_directory_file(
                engine,
                Path(args.file),
                actor=f"operator:{getpass.getuser()}",
                now=datetime.now(UTC),
                max_bytes=settings.limits.max_directory_bytes,
                dry_run=args.dry_run,
            )
        finally:
            await engine.dispose()
        for line in result.diff.lines():
            print(line)
        if result.diff.empty:
            print("No changes.")
        elif args.dry_run:
            print(f"Dry run: {result.diff.summary()}; nothing applied.")
        else:
            print(f"Applied directory revision {result.revision}: {result.diff.summary()}.")
        _note_stale_bindings(args)
        return EXIT_OK

    return _run(run())


def _note_stale_bindings(args: argparse.Namespace) -> None:
    from broker.trust.files import stale_bindings

    settings = load_settings(_data_dir(args), os.environ)
    note = stale_bindings(
        settings.data_dir, Path(args.file), max_bytes=settings.limits.max_directory_bytes
    )
    if note:
        print(f"note: {note}", file=sys.stderr)


def cmd_directory_show(args: argparse.Namespace) -> int:
    from broker.directory.present import jurisdiction_tree, to_document, tree_text
    from broker.store.directory_repo import load_directory

    async def run() -> int:
        _, engine = await _open_store(args)
        try:
            directory, revision = await load_directory(engine)
        finally:
            await engine.dispose()
        if args.json:
            document = {
                "revision": revision,
                "tree": jurisdiction_tree(directory),
                **to_document(directory),
            }
            print(json.dumps(document, ensure_ascii=False, indent=2))
        else:
            print(f"Directory revision {revision}")
            print(tree_text(directory))
        return EXIT_OK

    return _run(run())


async def _open_store(args: argparse.Namespace) -> tuple[Any, Any]:
    from broker.store.engine import create_engine, migrate

    settings = load_settings(_data_dir(args), os.environ)
    engine = create_engine(resolved_database_url(settings, os.environ))
    await migrate(engine)
    return settings, engine


# -- policy --------------------------------------------------------------------------------


def cmd_policy_check(args: argparse.Namespace) -> int:
    from broker.policy.load import load_policies

    policies = load_policies(Path(args.dir))
    print(
        f"{args.dir}: {len(policies.channels)} channels, {len(policies.statements)} Cedar policies, "
        f"valid ({policies.hash})"
    )
    return EXIT_OK


def cmd_policy_explain(args: argparse.Namespace) -> int:
    from broker.policy.explain import explain, explain_text
    from broker.service.notices import notice_facts_from_document
    from broker.state import BrokerState

    document = _read_json(Path(args.notice))

    async def run() -> int:
        settings, engine = await _open_store(args)
        try:
            view = await BrokerState(engine, settings.policies_dir, settings.limits).load()
        finally:
            await engine.dispose()
        facts = notice_facts_from_document(document, sender=args.sender or "unknown")
        report = explain(
            facts,
            view.authorizer,
            _parse_time(args.at),
            body=document.get("body"),
            check_sender=args.sender is not None,
        )
        print(
            json.dumps(report, ensure_ascii=False, indent=2) if args.json else explain_text(report)
        )
        return EXIT_OK

    return _run(run())


def cmd_policy_reload(args: argparse.Namespace) -> int:
    from broker.policy.load import load_policies

    data = _data_dir(args)
    settings = load_settings(data, os.environ)
    load_policies(
        settings.policies_dir
    )  # refuse early, with file:line, what the broker would refuse
    pids = []
    for pid_file in sorted((data / RUN_DIR).glob("liaison-*.pid")):
        try:
            pid = int(pid_file.read_text().strip())
            os.kill(pid, signal.SIGHUP)
            pids.append(pid)
        except (OSError, ValueError):
            continue  # a stale pid file: that process is gone
    if not pids:
        raise ConfigError(f"no running broker found for {data} ({RUN_DIR}/liaison-*.pid)")
    print(
        f"Policies in {settings.policies_dir} are valid; asked broker process(es) "
        f"{', '.join(map(str, pids))} to reload them."
    )
    return EXIT_OK


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a notice must be a JSON object")
    return data


# -- agency commands -------------------------------------------------------------------------


def _sender(args: argparse.Namespace) -> Any:
    """A sender client from --url/--key/--keyid, or from --data DIR --as AGENCY (the demo keys)."""
    from adapters.client.sender import SenderClient
    from broker.crypto.keys import read_private_key

    tls = _client_tls(args)
    if args.as_ is not None:
        data = _data_dir(args)
        settings = load_settings(data, os.environ)
        pair = read_private_key(data / "keys" / f"{args.as_}.pem", expected="ed25519")
        url = args.url or settings.public_url
        return SenderClient.from_pem(url, pair.pem(), pair.key_id(args.as_), ssl=tls)
    if not (args.url and args.key and args.keyid):
        raise ConfigError("give --url, --key and --keyid, or --data DIR --as AGENCY_ID")
    try:
        pem = Path(args.key).read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {args.key}: {e.strerror}") from e
    return SenderClient.from_pem(args.url, pem, args.keyid, ssl=tls)


def _client_tls(args: argparse.Namespace) -> Any:
    import ssl

    if not (args.ca or args.client_cert):
        return None
    try:
        context = ssl.create_default_context(cafile=args.ca)
        if args.client_cert:
            context.load_cert_chain(args.client_cert, args.client_key)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"TLS set-up failed: {e}") from e
    return context


def _sender_call(args: argparse.Namespace, call: Callable[[Any], Coroutine[Any, Any, Any]]) -> Any:
    from adapters.client.sender import SenderError

    async def run() -> Any:
        async with _sender(args) as client:
            return await call(client)

    try:
        return asyncio.run(run())
    except SenderError as e:
        raise ConfigError(str(e)) from e


def cmd_send(args: argparse.Namespace) -> int:
    if (args.notice is None) == (args.cap is None):
        raise ConfigError("give a NOTICE.json or --cap ALERT.xml")
    notice = _read_json(Path(args.notice)) if args.notice else _read_cap(args)
    response = _sender_call(
        args, lambda c: c.post_notice(notice, idempotency_key=args.idempotency_key)
    )
    body = response.body
    if args.json:
        print(json.dumps(body, indent=2))
        return EXIT_OK
    replay = " (the earlier answer to the same idempotency key)" if response.replayed else ""
    print(
        f"Accepted notice {safe(body['id'])}{replay}: {safe(body['recipient_count'])} recipient(s), "
        f"policy {safe(body['policy_hash'])}"
    )
    for missing in body.get("not_reached", []):
        print(f"  not reached: {safe(missing['role'])} ({safe(missing['reason'])})")
    return EXIT_OK


def _read_cap(args: argparse.Namespace) -> dict[str, Any]:
    from adapters.client.cap import CapError, cap_to_notice

    try:
        data = Path(args.cap).read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {args.cap}: {e.strerror}") from e
    try:
        return cap_to_notice(data, channel=args.channel, supersedes=args.supersedes)
    except CapError as e:
        raise ConfigError(f"{args.cap}: {e}") from e


def cmd_status(args: argparse.Namespace) -> int:
    response = _sender_call(args, lambda c: c.status(args.id))
    body = response.body
    if args.json:
        print(json.dumps(body, indent=2, ensure_ascii=False))
        return EXIT_OK
    print(
        f"Notice {safe(body['id'])} on {safe(body['channel'])} ({safe(body['status'])}), "
        f"posted {safe(body['created_at'])}"
    )
    for role in body["roles"]:
        when = role["acknowledged_at"] or role["read_at"] or role["delivered_at"] or ""
        print(
            f"  {safe(role['role_title'])} [{safe(role['role'])}]: {safe(role['state'])} {safe(when)}".rstrip()
        )
    for reply in body.get("replies", []):
        print(
            f"  reply from {safe(reply['role'])} at {safe(reply['created_at'])}: "
            f"{safe(_open_reply(args, body['id'], reply))}"
        )
    return EXIT_OK


def _open_reply(args: argparse.Namespace, notice_id: str, reply: dict[str, Any]) -> str:
    """Decrypt a reply with the agency's X25519 key when it is at hand (the demo keys)."""
    from adapters.client.sender import decrypt_reply
    from broker.crypto.envelope import DecryptionFailed
    from broker.crypto.keys import read_private_key

    if args.as_ is None:
        return "(encrypted to the agency's X25519 key)"
    path = _data_dir(args) / "keys" / f"{args.as_}.x25519.pem"
    try:
        return repr(
            decrypt_reply(reply, notice_id, read_private_key(path, expected="x25519").private_raw)
        )
    except (ConfigError, DecryptionFailed):
        return "(encrypted; this agency key cannot open it)"


# -- recipient commands ----------------------------------------------------------------------


def _recipient(args: argparse.Namespace) -> Any:
    """A recipient client from --url/--key/--enc-key/--contact, or --data DIR --as CONTACT."""
    from adapters.client.recipient import RecipientClient
    from broker.crypto.keys import read_private_key

    tls = _client_tls(args)
    if args.as_ is not None:
        data = _data_dir(args)
        url = args.url or load_settings(data, os.environ).public_url
        signing = read_private_key(data / "keys" / f"{args.as_}.pem", expected="ed25519")
        decryption = read_private_key(data / "keys" / f"{args.as_}.x25519.pem", expected="x25519")
        trust = _pinned_root(args, data / "trust" / "root.json")
        return RecipientClient(url, args.as_, signing, decryption, ssl=tls, trust=trust)
    if not (args.url and args.key and args.enc_key and args.contact):
        raise ConfigError(
            "give --url, --key, --enc-key and --contact, or --data DIR --as CONTACT_ID"
        )
    signing = read_private_key(Path(args.key), expected="ed25519")
    decryption = read_private_key(Path(args.enc_key), expected="x25519")
    trust = _pinned_root(args, None)
    return RecipientClient(args.url, args.contact, signing, decryption, ssl=tls, trust=trust)


def _pinned_root(args: argparse.Namespace, demo_root: Path | None) -> Any:
    """--root FILE (given at enrolment), or the demo's DIR/trust/root.json; state kept beside it."""
    from adapters.client.trust import PinnedRoot

    path = Path(args.root) if args.root else demo_root
    if path is None or not path.exists():
        return None  # reading then refuses: nothing pinned, nothing verified
    return PinnedRoot.from_file(path, state=path.with_name(path.name + ".seen"))


def _recipient_call(
    args: argparse.Namespace, call: Callable[[Any], Coroutine[Any, Any, Any]]
) -> Any:
    from adapters.client.errors import RecipientError, VerificationFailed

    async def run() -> Any:
        async with _recipient(args) as client:
            return await call(client)

    try:
        return asyncio.run(run())
    except VerificationFailed as e:
        raise ConfigError(f"REFUSED: {e}. Do not act on this notice; report it.") from e
    except RecipientError as e:
        raise ConfigError(str(e)) from e


def cmd_inbox(args: argparse.Namespace) -> int:
    page = _recipient_call(
        args,
        lambda c: c.inbox(
            status=args.status, channel=args.channel, limit=args.limit, cursor=args.cursor
        ),
    )
    if args.json:
        print(json.dumps(page, indent=2))
        return EXIT_OK
    if not page["items"]:
        print("No notices.")
    for item in page["items"]:
        mark = "" if item["status"] == "active" else f" [{item['status']}]"
        print(
            f"{safe(item['created_at'])}  {safe(item['notice_id'])}  {safe(item['channel'])}  "
            f"TLP:{safe(item['marking'])}  {safe(item['severity'])}  {safe(item['state'])}{safe(mark)}  "
            f"(as {safe(item['role'])})"
        )
    if page["next_cursor"]:
        print(f"More: --cursor {safe(page['next_cursor'])}")
    return EXIT_OK


def cmd_read(args: argparse.Namespace) -> int:
    verified = _recipient_call(args, lambda c: c.read(args.id))
    meta, notice = verified.metadata, verified.notice
    if args.json:
        print(
            json.dumps(
                {
                    "metadata": meta,
                    "notice": notice,
                    "verified": True,
                    "signed_by": verified.sender_name,
                },
                indent=2,
                ensure_ascii=False,
            )
        )
        return EXIT_OK
    print(
        f"TLP:{safe(meta['marking'])}  {safe(meta['channel'])}  {safe(meta['severity'])}  {safe(meta['id'])}"
    )
    print(
        f"Signed by {safe(verified.sender_name)} (key {safe(verified.sender_key_id)}): verified "
        "against the signed directory"
    )
    if meta["status"] != "active" or meta["kind"] != "notice":
        print(
            f"This is a{'n' if meta['kind'] == 'update' else ''} {safe(meta['kind'])} ({safe(meta['status'])}); "
            f"supersedes {safe(meta['supersedes'])}"
        )
    print(f"\n{safe(notice['subject'])}\n")
    print(json.dumps(notice["body"], indent=2, ensure_ascii=False))
    return EXIT_OK


def cmd_ack(args: argparse.Namespace) -> int:
    import base64

    async def run(client: Any) -> Any:
        agency_key = None
        if args.reply is not None:
            fetched = await client._request("GET", f"/v1/notices/{args.id}")
            key = fetched.get("reply_key")
            if key is None:
                raise ConfigError("this notice's channel takes no replies")
            agency_key = (key["key_id"], base64.b64decode(key["public"]))
        return await client.ack(args.id, reply=args.reply, agency_key=agency_key)

    answer = _recipient_call(args, run)
    print(f"Acknowledged {safe(answer['id'])} at {safe(answer['acknowledged_at'])}")
    return EXIT_OK


def cmd_watch(args: argparse.Namespace) -> int:
    async def run(client: Any) -> int:
        async for event_id, event in client.follow(last_event_id=args.last_event_id):
            print(
                f"{safe(event_id)}  {safe(event['created_at'])}  {safe(event['notice_id'])}  "
                f"{safe(event['channel'])}  TLP:{safe(event['marking'])}  {safe(event['severity'])}  "
                f"(as {safe(event['role'])})",
                flush=True,
            )
        return EXIT_OK

    return int(_recipient_call(args, run))


# -- audit commands --------------------------------------------------------------------------


def cmd_audit_export(args: argparse.Namespace) -> int:
    out = sys.stdout.buffer if args.out in (None, "-") else open(args.out, "wb")  # noqa: SIM115 - closed below
    try:
        if args.url or args.as_:  # through the API, as an auditor; else read the local store
            count = _recipient_call(args, lambda c: _write_lines(c.audit_export(), out))
        else:
            count = asyncio.run(_local_export(args, out))
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    if args.out not in (None, "-"):
        print(
            f"Exported {count} events with their signed checkpoints to {args.out}", file=sys.stderr
        )
    return EXIT_OK


async def _write_lines(lines: Any, out: Any) -> int:
    count = -1  # the header is not an event
    async for line in lines:
        out.write(line)
        count += 1
    return count


async def _local_export(args: argparse.Namespace, out: Any) -> int:
    from broker.crypto.keys import ed25519_signer
    from broker.service.audit import AuditService
    from broker.state import BrokerState

    settings, engine = await _open_store(args)
    try:
        signing = load_private_key(
            resolve_secret(settings.keys.signing_key, settings, os.environ), expected="ed25519"
        )
        state = BrokerState(engine, settings.policies_dir, settings.limits)
        service = AuditService(
            state, ed25519_signer(signing), page_max=settings.audit.events_page_max
        )
        return await _write_lines(
            service.export(f"operator:{getpass.getuser()}", datetime.now(UTC)), out
        )
    finally:
        await engine.dispose()


def cmd_audit_verify(args: argparse.Namespace) -> int:
    import base64

    from broker.audit.verify import read_export, verify_export

    key = base64.b64decode(args.checkpoint_key) if args.checkpoint_key else None
    if args.file:
        try:
            with open(args.file, "rb") as f:
                header, lines = read_export(f)
                result = verify_export(header, lines, trusted_key=key)
        except (OSError, ValueError) as e:
            raise ConfigError(f"{args.file}: {e}") from e
    else:

        async def fetch(client: Any) -> list[bytes]:
            return [line async for line in client.audit_export()]

        exported = _recipient_call(args, fetch)
        header, lines = read_export(exported)
        result = verify_export(header, lines, trusted_key=key)
    if not key:
        print(
            "note: the checkpoint key was taken from the export; pin it with --checkpoint-key to check who signed",
            file=sys.stderr,
        )
    if not result.ok:
        print(f"liaison: audit log does NOT verify: {result.message}", file=sys.stderr)
        return EXIT_FAILED
    print(f"OK: {result.message}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from broker.demo import run_demo

    keep = Path(args.keep) if args.keep else None
    if keep is not None and keep.exists():
        raise ConfigError(f"{keep} exists; --keep needs a new directory")
    configure_logging("warning", "console")  # the narration is the output; warnings still show
    ok = asyncio.run(run_demo(lambda line: print(line, flush=True), keep))
    return EXIT_OK if ok else EXIT_FAILED


# -- the parser ----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="liaison", description="Liaison: a secure inter-agency information-sharing broker."
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(
        name: str, run: Callable[[argparse.Namespace], int], help: str, parent: Any = sub
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help, description=help)
        p.set_defaults(run=run)
        return p

    def data_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--data",
            metavar="DIR",
            help="data directory (default: $LIAISON_DATA or ./liaison-data)",
        )

    p = command("init", cmd_init, "create a data directory, empty or with demo data")
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

    p = command("serve", cmd_serve, "run the broker")
    data_option(p)
    p.add_argument("--host", help="listen address (default from liaison.toml: 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default from liaison.toml: 8750)")
    p.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate chain")
    p.add_argument("--tls-key", metavar="PEM", help="the certificate's private key")
    p.add_argument(
        "--client-ca", metavar="PEM", help="require agency client certificates from this CA (mTLS)"
    )

    p = command("keygen", cmd_keygen, "generate a key pair; write the private key as PKCS#8 PEM")
    p.add_argument("--type", choices=["ed25519", "x25519"], required=True)
    p.add_argument("--out", required=True, metavar="FILE")
    p.add_argument("--owner", help="organisation or contact id the key belongs to (for the key id)")

    directory = sub.add_parser("directory", help="the institutional directory")
    dsub = directory.add_subparsers(title="directory commands", metavar="COMMAND")
    directory.set_defaults(run=lambda a: _usage(directory))
    p = command(
        "apply", cmd_directory_apply, "validate a directory file and apply it atomically", dsub
    )
    p.add_argument("file", metavar="FILE")
    data_option(p)
    p.add_argument("--dry-run", action="store_true", help="show what would change, change nothing")
    p = command("show", cmd_directory_show, "print the directory", dsub)
    data_option(p)
    p.add_argument(
        "--json", action="store_true", help="machine-readable, with the jurisdiction tree"
    )

    policy = sub.add_parser("policy", help="channels and authorization policies")
    psub = policy.add_subparsers(title="policy commands", metavar="COMMAND")
    policy.set_defaults(run=lambda a: _usage(policy))
    p = command(
        "check",
        cmd_policy_check,
        "validate a policy directory (file:line: reason on failure)",
        psub,
    )
    p.add_argument("dir", metavar="DIR")
    p = command(
        "explain", cmd_policy_explain, "who would receive a notice, and by which rule", psub
    )
    p.add_argument("notice", metavar="NOTICE.json")
    data_option(p)
    p.add_argument(
        "--as", dest="sender", metavar="ORG", help="check that this organisation may publish it"
    )
    p.add_argument("--at", metavar="TIME", help="route as of this time (ISO 8601; default now)")
    p.add_argument("--json", action="store_true")
    p = command(
        "reload",
        cmd_policy_reload,
        "validate the policies and make the running broker load them",
        psub,
    )
    data_option(p)

    def agency_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", help="broker URL (default with --data: server.public_url)")
        p.add_argument("--key", metavar="PEM", help="the agency's Ed25519 private key (PKCS#8 PEM)")
        p.add_argument("--keyid", help="the key's id in the directory")
        data_option(p)
        p.add_argument(
            "--as", dest="as_", metavar="AGENCY_ID", help="with --data: act as this demo agency"
        )
        p.add_argument(
            "--ca", metavar="PEM", help="trust this CA for the broker's HTTPS certificate"
        )
        p.add_argument(
            "--client-cert", metavar="PEM", help="present this client certificate (mTLS)"
        )
        p.add_argument("--client-key", metavar="PEM", help="the client certificate's private key")
        p.add_argument("--json", action="store_true")

    p = command("send", cmd_send, "post a signed notice (or an OASIS CAP 1.2 alert) as an agency")
    p.add_argument("notice", metavar="NOTICE.json", nargs="?")
    p.add_argument(
        "--cap", metavar="ALERT.xml", help="import this CAP 1.2 alert instead of a notice file"
    )
    p.add_argument(
        "--channel",
        default="public-safety-alert",
        help="with --cap: the channel (default: %(default)s)",
    )
    p.add_argument(
        "--supersedes",
        metavar="NOTICE_ID",
        help="with --cap: the notice a CAP Update/Cancel replaces",
    )
    p.add_argument("--idempotency-key", help="reuse it to retry safely (default: a fresh one)")
    agency_options(p)
    p = command("status", cmd_status, "delivery status of one of the agency's notices, per role")
    p.add_argument("id", metavar="NOTICE_ID")
    agency_options(p)

    def recipient_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", help="broker URL (default with --data: server.public_url)")
        p.add_argument("--contact", help="your contact id in the directory")
        p.add_argument("--key", metavar="PEM", help="your Ed25519 signing key (PKCS#8 PEM)")
        p.add_argument("--enc-key", metavar="PEM", help="your X25519 decryption key (PKCS#8 PEM)")
        data_option(p)
        p.add_argument(
            "--as", dest="as_", metavar="CONTACT_ID", help="with --data: act as this demo contact"
        )
        p.add_argument(
            "--ca", metavar="PEM", help="trust this CA for the broker's HTTPS certificate"
        )
        p.add_argument("--client-cert", metavar="PEM", help=argparse.SUPPRESS)
        p.add_argument("--client-key", metavar="PEM", help=argparse.SUPPRESS)
        p.add_argument(
            "--root",
            metavar="FILE",
            help="the directory root pinned at enrolment (default with --data: DIR/trust/root.json)",
        )

    p = command("inbox", cmd_inbox, "list your notices (metadata only)")
    p.add_argument(
        "--status", choices=["pending", "delivered", "read", "acknowledged", "escalated"]
    )
    p.add_argument("--channel")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--cursor")
    p.add_argument("--json", action="store_true")
    recipient_options(p)
    p = command(
        "read", cmd_read, "fetch a notice, decrypt it here and verify the agency's signature"
    )
    p.add_argument("id", metavar="NOTICE_ID")
    p.add_argument("--json", action="store_true")
    recipient_options(p)
    p = command("ack", cmd_ack, "acknowledge a notice (signed with your key), optionally replying")
    p.add_argument("id", metavar="NOTICE_ID")
    p.add_argument("--reply", help="a reply to the sending agency, encrypted to its key")
    recipient_options(p)
    p = command("watch", cmd_watch, "print new notices as they arrive (Ctrl-C to stop)")
    p.add_argument("--last-event-id", type=int, help="resume after this event")
    recipient_options(p)

    audit = sub.add_parser("audit", help="the tamper-evident audit log")
    asub = audit.add_subparsers(title="audit commands", metavar="COMMAND")
    audit.set_defaults(run=lambda a: _usage(audit))
    p = command(
        "export", cmd_audit_export, "export the log (JSON Lines) with its signed checkpoints", asub
    )
    p.add_argument("--out", metavar="FILE", help="write here (default: standard output)")
    recipient_options(p)
    p = command(
        "verify", cmd_audit_verify, "verify an export, or a live broker's log with --url", asub
    )
    p.add_argument("file", metavar="FILE", nargs="?")
    p.add_argument(
        "--checkpoint-key",
        metavar="BASE64",
        help="the broker's checkpoint key (Ed25519, base64) to trust",
    )
    recipient_options(p)
    add_trust_commands(sub, command)
    add_keys_commands(sub, command, data_option)
    p = command("demo", cmd_demo, "tell the whole story against a temporary embedded broker")
    p.add_argument("--keep", metavar="DIR", help="keep the demo's data directory here")
    from broker.cli_escrow import add_commands as add_escrow_commands
    from broker.cli_store import add_commands as add_store_commands

    add_escrow_commands(sub, command, _data_dir)
    add_store_commands(sub, command, _data_dir)
    return parser


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
