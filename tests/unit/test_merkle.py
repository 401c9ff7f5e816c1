"""The broker's Merkle code against an independent RFC 9162 implementation (tests/rfc9162.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.audit import merkle
from tests import rfc9162

ENTRIES = [f"event {i}".encode() for i in range(70)]


@pytest.mark.parametrize("n", range(0, 70))
def test_compact_range_root_is_the_rfc_tree_head(n: int) -> None:
    tree = merkle.CompactRange()
    for entry in ENTRIES[:n]:
        tree.append(merkle.leaf_hash(entry))
    assert tree.root() == rfc9162.mth(ENTRIES[:n])
    again = merkle.CompactRange.load(tree.size, tree.dump())
    assert again.root() == tree.root()


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 31, 64, 65])
def test_every_inclusion_proof_verifies_independently(n: int) -> None:
    leaves = [merkle.leaf_hash(e) for e in ENTRIES[:n]]
    root = rfc9162.mth(ENTRIES[:n])
    for i in range(n):
        proof = merkle.inclusion_proof(i, leaves)
        assert rfc9162.verify_inclusion(i, n, ENTRIES[i], proof, root)
        assert merkle.verify_inclusion(leaves[i], i, n, proof, root)
        if proof:
            bad = [bytes(32), *proof[1:]]
            assert not rfc9162.verify_inclusion(i, n, ENTRIES[i], bad, root)
            assert not merkle.verify_inclusion(leaves[i], i, n, bad, root)


@pytest.mark.parametrize("n", [2, 3, 7, 8, 9, 33, 64])
def test_every_consistency_proof_verifies_independently(n: int) -> None:
    leaves = [merkle.leaf_hash(e) for e in ENTRIES[:n]]
    second = rfc9162.mth(ENTRIES[:n])
    for m in range(1, n + 1):
        first = rfc9162.mth(ENTRIES[:m])
        proof = merkle.consistency_proof(m, leaves)
        assert rfc9162.verify_consistency(m, n, first, second, proof), m
        assert merkle.verify_consistency(m, n, proof, first, second), m
        if m < n:
            assert not rfc9162.verify_consistency(m, n, bytes(32), second, proof)
            assert not merkle.verify_consistency(m, n, proof, bytes(32), second)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=20), min_size=1, max_size=40), st.data())
def test_property_proofs_hold_for_any_log(entries: list[bytes], data: st.DataObject) -> None:
    leaves = [merkle.leaf_hash(e) for e in entries]
    n = len(entries)
    index = data.draw(st.integers(0, n - 1))
    assert rfc9162.verify_inclusion(
        index, n, entries[index], merkle.inclusion_proof(index, leaves), rfc9162.mth(entries)
    )
    m = data.draw(st.integers(1, n))
    proof = merkle.consistency_proof(m, leaves)
    assert rfc9162.verify_consistency(m, n, rfc9162.mth(entries[:m]), rfc9162.mth(entries), proof)
