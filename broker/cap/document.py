"""CAP 1.2 documents as XML: one safe parser and the OASIS schema, shared by import and export.

Invariants:
- a document is first read by defusedxml (no DTD entities, no external references), then by
  lxml with entity resolution, DTD loading and the network off, so no parser fetches or expands;
- every document imported or exported is valid against the OASIS CAP 1.2 XSD shipped beside
  this module (``CAP-v1.2.xsd``, the schema of the OASIS standard); a refusal names the element.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import defusedxml.ElementTree as SafeXML
from defusedxml.common import DefusedXmlException
from lxml import etree

NS = "urn:oasis:names:tc:emergency:cap:1.2"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
MAX_BYTES = 150_000  # bytes of one alert: carried base64 inside a notice body (256 KiB limit)
SCHEMA_FILE = Path(__file__).with_name("CAP-v1.2.xsd")


class CapError(Exception):
    """The alert cannot be imported or exported; the message names the element and the reason."""


@cache
def _schema() -> Any:
    return etree.XMLSchema(etree.parse(str(SCHEMA_FILE), _parser()))


def _parser() -> Any:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def parse(data: bytes) -> Any:
    """The alert's root element, after the safety checks and the schema; CapError otherwise."""
    if len(data) > MAX_BYTES:
        raise CapError(f"the alert is over {MAX_BYTES} bytes")
    try:
        SafeXML.fromstring(data)  # refuses entity declarations and external references first
        root = etree.fromstring(data, _parser())
    except (SafeXML.ParseError, DefusedXmlException, etree.XMLSyntaxError) as e:
        raise CapError(f"not valid XML: {e}") from e
    if root.tag != f"{{{NS}}}alert":
        raise CapError("the document is not a CAP 1.2 alert (root element alert in its namespace)")
    validate(root)
    return root


def validate(root: Any) -> None:
    """Raise CapError naming the first element the CAP 1.2 schema refuses."""
    schema = _schema()
    if schema.validate(root):
        return
    error = schema.error_log[0]
    message = str(error.message).replace(f"{{{NS}}}", "")
    raise CapError(
        f"{_where(root, error.line, message)}: not valid CAP 1.2 (line {error.line}): {message}"
    )


def _where(root: Any, line: int, message: str) -> str:
    """'alert/info/area/circle': the refused element, found by the line the schema names."""
    named = message.split("'")[1] if message.startswith("Element '") else None
    for element in root.iter():
        if element.sourceline == line and (named is None or local(element) == named):
            names = [local(e) for e in (*reversed(list(element.iterancestors())), element)]
            return "/".join(names)
    return "alert"


def local(element: Any) -> str:
    return str(etree.QName(element).localname)


def text(parent: Any, name: str) -> str | None:
    child = parent.find(f"{{{NS}}}{name}")
    return None if child is None else (child.text or "").strip()


def texts(parent: Any, name: str) -> list[str]:
    return [(c.text or "").strip() for c in parent.findall(f"{{{NS}}}{name}")]


def pairs(parent: Any, name: str) -> list[dict[str, str]]:
    """``eventCode``, ``parameter`` or ``geocode`` children as ``{"name": …, "value": …}``."""
    return [
        {"name": text(c, "valueName") or "", "value": text(c, "value") or ""}
        for c in parent.findall(f"{{{NS}}}{name}")
    ]


def serialise(root: Any) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
