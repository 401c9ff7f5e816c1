"""Dependencies point inward; only the named packages import the libraries they own.

Parses imports (no execution), so a violation is reported with the file that makes it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in files(package)
        for name in sorted(imports(path))
        if name == forbidden
        or name.startswith(forbidden)
        or any(name == f or name.startswith(f + ".") for f in forbidden)
    ]


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        (
            "broker/domain",
            (
                "broker.",
                "sqlalchemy",
                "sqlmodel",
                "aiohttp",
                "nacl",
                "cryptography",
                "jwt",
                "cedarpy",
            ),
        ),
        (
            "broker/policy",
            ("broker.store", "broker.http", "broker.service", "sqlalchemy", "sqlmodel", "aiohttp"),
        ),
        (
            "broker/directory",
            ("broker.store", "broker.http", "broker.service", "sqlalchemy", "sqlmodel", "aiohttp"),
        ),
        (
            "broker/crypto",
            ("broker.store", "broker.http", "broker.service", "sqlalchemy", "sqlmodel", "aiohttp"),
        ),
        (
            "broker/trust",
            ("broker.store", "broker.http", "broker.service", "sqlalchemy", "sqlmodel", "aiohttp"),
        ),
        ("adapters", ("broker.service", "broker.store", "broker.http", "sqlalchemy", "sqlmodel")),
    ],
)
def test_inner_layers_do_not_reach_outward(package: str, forbidden: tuple[str, ...]) -> None:
    assert offenders(package, forbidden) == []


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
        str(p.relative_to(ROOT))
        for p in outside
        if any(n == library or n.startswith(library + ".") for n in imports(p))
    ]
    assert users == []
