"""Dependencies point inward; only the named packages import the libraries they own.

Parses imports (no execution), relative ones resolved, so a violation is reported with the file
that makes it. Each rule is also played against a deliberate violation in a scratch tree, so a
rule that can no longer fail is noticed.

The rules (issue 15):
- ``broker/http`` never imports ``broker.store``: handlers parse, call a service, answer;
- ``broker/service`` imports no ``aiohttp`` and no ``adapters``: drivers are injected by
  ``broker/app.py`` through ``broker.service.ports``;
- the pure cores (``broker/audit``, ``broker/policy``, ``broker/crypto``, ``broker/domain``)
  import no I/O library (``IO_LIBRARIES`` below). Reading and writing local files through
  ``pathlib`` is allowed on purpose: the policy loader reads ``policies/`` and the key module
  writes a 0600 key file; network, database, SMTP, subprocess and event-loop libraries are not;
- ``adapters`` never import the broker's service, store, http, state, composition root or CLI,
  and its two halves (``adapters.client``, ``adapters.delivery``) never import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

IO_LIBRARIES = (
    "aiohttp",
    "aiosmtplib",
    "aiosqlite",
    "alembic",
    "asyncio",
    "asyncpg",
    "http.client",
    "httpx",
    "multiprocessing",
    "psycopg",
    "psycopg2",
    "requests",
    "selectors",
    "smtplib",
    "socket",
    "sqlalchemy",
    "sqlmodel",
    "ssl",
    "subprocess",
    "urllib.request",
    "urllib3",
)
BROKER_OUTER = (
    "broker.service",
    "broker.store",
    "broker.http",
    "broker.app",
    "broker.state",
    "broker.cli",
)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path = ROOT) -> set[str]:
    """Every module ``path`` imports, relative imports resolved against its package."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            if node.module:
                found.add(module)
            else:  # from . import x: each name is a module of the package
                found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


def files(package: str, root: Path = ROOT) -> list[Path]:
    return sorted((root / package).rglob("*.py"))


def matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix.rstrip(".") + ".")


def offenders(package: str, forbidden: tuple[str, ...], root: Path = ROOT) -> list[str]:
    return [
        f"{path.relative_to(root)} imports {name}"
        for path in files(package, root)
        for name in sorted(imports(path, root))
        if any(matches(name, f) for f in forbidden)
    ]


RULES = [
    ("broker/http", ("broker.store",)),
    ("broker/service", ("aiohttp", "adapters")),
    ("broker/audit", ("broker.store", "broker.http", "broker.service", *IO_LIBRARIES)),
    ("broker/policy", ("broker.store", "broker.http", "broker.service", *IO_LIBRARIES)),
    ("broker/crypto", ("broker.store", "broker.http", "broker.service", *IO_LIBRARIES)),
    ("broker/domain", ("broker.", "nacl", "cryptography", "jwt", "cedarpy", *IO_LIBRARIES)),
    ("broker/directory", ("broker.store", "broker.http", "broker.service", "aiohttp")),
    ("broker/trust", ("broker.store", "broker.http", "broker.service", *IO_LIBRARIES)),
    # CAP runs in the intake and on recipients' devices alike: pure, over bytes.
    ("broker/cap", ("broker.store", "broker.http", "broker.service", "adapters", *IO_LIBRARIES)),
    ("adapters", (*BROKER_OUTER, "sqlalchemy", "sqlmodel")),
    ("adapters/client", ("adapters.delivery",)),
    ("adapters/delivery", ("adapters.client",)),
]


@pytest.mark.parametrize(("package", "forbidden"), RULES, ids=[r[0] for r in RULES])
def test_inner_layers_do_not_reach_outward(package: str, forbidden: tuple[str, ...]) -> None:
    assert files(package), f"{package} has no modules: the rule would pass on nothing"
    assert offenders(package, forbidden) == []


VIOLATIONS = {
    "broker/http": "from broker.store import intake_repo\n",
    "broker/service": "import aiohttp\n",
    "broker/audit": "import socket\n",
    "broker/policy": "from sqlalchemy import select\n",
    "broker/crypto": "import subprocess\n",
    "broker/domain": "from aiosmtplib import send\n",
    "broker/directory": "from ..store import engine\n",
    "broker/trust": "import httpx\n",
    "broker/cap": "from adapters.client.sender import SenderClient\n",
    "adapters": "from broker.service.outbox import Outbox\n",
    "adapters/client": "from ..delivery import webhook\n",
    "adapters/delivery": "from adapters.client.sender import SenderClient\n",
}


@pytest.mark.parametrize(("package", "forbidden"), RULES, ids=[r[0] for r in RULES])
def test_each_rule_fails_on_a_deliberate_violation(
    tmp_path: Path, package: str, forbidden: tuple[str, ...]
) -> None:
    target = tmp_path / package
    target.mkdir(parents=True)
    for parent in [target, *target.relative_to(tmp_path).parents]:
        (tmp_path / parent / "__init__.py").touch()
    (target / "clean.py").write_text("from __future__ import annotations\nimport json\n")
    assert offenders(package, forbidden, tmp_path) == []
    (target / "bad.py").write_text(VIOLATIONS[package])
    assert len(offenders(package, forbidden, tmp_path)) == 1


def test_the_service_layer_may_not_import_a_driver_even_by_a_relative_path(tmp_path: Path) -> None:
    (tmp_path / "broker" / "service").mkdir(parents=True)
    (tmp_path / "broker" / "service" / "x.py").write_text(
        "from . import ports\nfrom .. import app\n"
    )
    assert imports(tmp_path / "broker" / "service" / "x.py", tmp_path) == {
        "broker.service.ports",
        "broker.app",
    }


@pytest.mark.parametrize(
    ("library", "owner"),
    [
        ("sqlalchemy", "broker/store"),
        ("sqlmodel", "broker/store"),
        ("alembic", "broker/store"),
        ("nacl", "broker/crypto"),
        ("cryptography", "broker/crypto"),
        ("jwt", "broker/crypto"),
        ("shamir_mnemonic", "broker/crypto"),
    ],
)
def test_only_the_owning_package_imports_a_library(library: str, owner: str) -> None:
    outside = [p for p in files("broker") if not p.is_relative_to(ROOT / owner)]
    users = [
        str(p.relative_to(ROOT)) for p in outside if any(matches(n, library) for n in imports(p))
    ]
    assert users == []
