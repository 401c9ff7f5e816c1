"""Checkpoints (c2sp.org/tlog-checkpoint): origin, tree size and root hash, as a signed note."""

from __future__ import annotations

import base64
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if (
            len(lines) < 4
            or lines[-1] != ""
            or not lines[1].isdigit()
            or (lines[1] != "0" and lines[1][0] == "0")
        ):
            raise ValueError("not a checkpoint")
        root = base64.b64decode(lines[2], validate=True)
        if len(root) != 32:
            raise ValueError("a checkpoint root is 32 bytes")
        return cls(lines[0], int(lines[1]), root)
