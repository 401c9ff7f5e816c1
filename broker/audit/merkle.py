"""RFC 9162 (RFC 6962) Merkle trees: leaf and node hashes, a compact range, proofs, verification.

Leaf hash = SHA-256(0x00 || data); node hash = SHA-256(0x01 || left || right); the tree over n
leaves splits at the largest power of two below n. ``CompactRange`` keeps only the roots of the
perfect subtrees that make up the tree (at most log2(n) hashes), so appending and taking the
root cost O(log n) however large the log grows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


@dataclass
class CompactRange:
    """The frontier of a Merkle tree: (height, hash) of each perfect subtree, largest first."""

    size: int = 0
    frontier: list[tuple[int, bytes]] = field(default_factory=list)

    def append(self, leaf: bytes) -> None:
        frontier = self.frontier
        frontier.append((0, leaf))
        self.size += 1
        while len(frontier) >= 2 and frontier[-1][0] == frontier[-2][0]:
            height, right = frontier.pop()
            _, left = frontier.pop()
            frontier.append((height + 1, node_hash(left, right)))

    def root(self) -> bytes:
        if not self.frontier:
            return EMPTY_ROOT
        value = self.frontier[-1][1]
        for _, left in reversed(self.frontier[:-1]):
            value = node_hash(left, value)
        return value

    def dump(self) -> list[list[int | str]]:
        return [[h, v.hex()] for h, v in self.frontier]

    @classmethod
    def load(cls, size: int, dumped: Sequence[Sequence[int | str]]) -> CompactRange:
        return cls(size, [(int(h), bytes.fromhex(str(v))) for h, v in dumped])


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def subtree_root(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    n = hi - lo
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[lo]
    k = _split(n)
    return node_hash(subtree_root(leaves, lo, lo + k), subtree_root(leaves, lo + k, hi))


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(index, D[n]) of RFC 9162 2.1.3.1, over the leaf hashes of a tree of size len(leaves)."""
    if not 0 <= index < len(leaves):
        raise ValueError("leaf index outside the tree")

    def path(m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return [*path(m, lo, lo + k), subtree_root(leaves, lo + k, hi)]
        return [*path(m - k, lo + k, hi), subtree_root(leaves, lo, lo + k)]

    return path(index, 0, len(leaves))


def consistency_proof(first: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(first, D[n]) of RFC 9162 2.1.4.1, from a tree of size ``first`` to len(leaves)."""
    if not 0 < first <= len(leaves):
        raise ValueError("sizes out of range")

    def subproof(m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if complete else [subtree_root(leaves, lo, hi)]
        k = _split(n)
        if m <= k:
            return [*subproof(m, lo, lo + k, complete), subtree_root(leaves, lo + k, hi)]
        return [*subproof(m - k, lo + k, hi, False), subtree_root(leaves, lo, lo + k)]

    return subproof(first, 0, len(leaves), True)


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    first: int, second: int, proof: Sequence[bytes], first_root: bytes, second_root: bytes
) -> bool:
    """RFC 9162 2.1.4.2."""
    if first == second:
        return not proof and first_root == second_root
    if first == 0 or first > second or not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:  # a power of two: the first root starts the path
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root
