"""The add-checkpoint wire format and answers (c2sp.org/tlog-witness), against the spec's text.

The request and response bodies below are the specification's own examples, byte for byte; the
decisions are played over real Merkle trees, with the status the specification names for each.
"""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.audit.merkle import consistency_proof
from broker.audit.tlog_witness import (
    Conflict,
    Refusal,
    decide,
    format_request,
    parse_cosignatures,
    parse_request,
    parse_size,
)
from broker.audit.witness import WitnessState
from broker.crypto.cosignature import verify_cosignature
from broker.crypto.note import sign_note
from broker.federation.cosigning import own_note
from tests.unit.test_witness import (
    LOG_PUBLIC,
    ORIGIN,
    W_PUBLIC,
    WITNESS,
    cosigner,
    leaves,
    note,
    witnessed,
)

SPEC_REQUEST = (
    "old 20852014\n"
    "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"
    "jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n"
    "5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n"
    "/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n"
    "\n"
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    "\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5"
    "/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    "\u2014 example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks"
    "+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=\n"
)
SPEC_RESPONSE = (
    "\u2014 witness.example/w1 CMp+6LWBU0anHGH5aNDTJkH/gj79sG+T6+iP2ThYN5krrDJbR1HDnucjL39QsZTS"
    "vVjyQLrdk3DXDqI5G2HgLatVs0pWh6Up69HVOw==\n"
    "\u2014 witness.example/w1 I7rEps0pvK2UqkS2gSpVUDhrhVtQV9lgF6pRrWAvjJHjyWpW7VcE3SiOlVlbQNt6"
    "4vWhO+DlkL0+UfzuOBMh9ChdMkP1vi/lCAsmlw==\n"
    "\u2014 witness.example/w2 AWui8Sk55XjYLOijihBjhqEH6nS1ndDymE0a+6idX7pLcnoB+dhnz0854aLZgrrK"
    "bYKA7nC3HNJhm/kWl7oJlqU3rXXvpysAdyP3wQ==\n"
)
NOW = 1_764_000_100


def test_the_specs_example_request_parses_and_formats_back_byte_for_byte() -> None:
    submission = parse_request(SPEC_REQUEST.encode())
    assert submission.old == 20852014 and submission.origin == "example.com/behind-the-sofa"
    assert len(submission.proof) == 4 and all(len(h) == 32 for h in submission.proof)
    assert submission.proof[0] == base64.b64decode("PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=")
    assert submission.note.count("\u2014 ") == 2 and submission.note.endswith("qbSzm9Q=\n")
    assert format_request(*vars_of(submission)).decode() == SPEC_REQUEST


def vars_of(submission: object) -> tuple[int, tuple[bytes, ...], str]:
    return submission.old, submission.proof, submission.note  # type: ignore[attr-defined]


def test_the_specs_example_response_is_three_signature_lines() -> None:
    lines = parse_cosignatures(SPEC_RESPONSE)
    assert [line.split(" ")[1] for line in lines] == ["witness.example/w1"] * 2 + [
        "witness.example/w2"
    ]
    with pytest.raises(ValueError, match="not signature lines"):
        parse_cosignatures("not a signature\n")
    assert parse_size("20852014\n") == 20852014
    for bad in ("20852014", "020\n", "-1\n", "\n"):
        with pytest.raises(ValueError, match=r"newline|decimal"):
            parse_size(bad)


@pytest.mark.parametrize(
    "body",
    [
        "old 01\n\n" + SPEC_REQUEST.split("\n\n", 1)[1],  # a leading zero
        "old -1\n\n" + SPEC_REQUEST.split("\n\n", 1)[1],
        "size 3\n\n" + SPEC_REQUEST.split("\n\n", 1)[1],  # not the old size line
        "old 3\nnot base64!\n\n" + SPEC_REQUEST.split("\n\n", 1)[1],
        "old 3\n" + "AAAA\n" + "\n" + SPEC_REQUEST.split("\n\n", 1)[1],  # not 32 bytes
        "old 3\n" + "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n" * 64 + "\n" + "x\n\n— y z\n",
        "old 3\n\nexample.com/behind-the-sofa\n3\n",  # a checkpoint without a signature
        "old 3",
    ],
    ids=["leading-zero", "negative", "no-old", "proof-not-b64", "proof-short", "64-lines",
         "unsigned", "no-checkpoint"],
)  # fmt: skip
def test_a_malformed_request_is_a_400(body: str) -> None:
    with pytest.raises(Refusal) as refused:
        parse_request(body.encode())
    assert refused.value.status == 400


def submit(state: WitnessState, old: int, proof: list[bytes], checkpoint: str) -> int:
    """The status the witness answers; 200 with a cosignature that verifies."""
    try:
        cosigned = decide(
            state, parse_request(format_request(old, proof, checkpoint)), NOW, cosigner
        )
    except Conflict as c:
        return 409 if c.size == state.size else -c.size  # the 409 says the size cosigned last
    except Refusal as r:
        return r.status
    assert verify_cosignature(cosigned.note, WITNESS, W_PUBLIC) == NOW
    return 200


def test_each_answer_of_the_spec_for_a_known_log() -> None:
    fresh = WitnessState(ORIGIN, LOG_PUBLIC)
    five, eight = leaves(5), leaves(8)
    assert submit(fresh, 0, [], note(five)) == 200  # first checkpoint, taken on trust
    state = witnessed(five)
    good = consistency_proof(5, eight)
    assert submit(state, 5, good, note(eight)) == 200
    assert submit(state, 0, [], note(eight)) == 409  # not the size cosigned last
    assert submit(state, 6, good, note(eight)) == 409
    assert submit(state, 9, good, note(eight)) == 400  # old size above the checkpoint's
    rewritten = leaves(8, b"rewritten")
    assert submit(state, 5, consistency_proof(5, rewritten), note(rewritten)) == 422
    assert submit(state, 5, [], note(eight)) == 422  # no proof at all
    assert submit(state, 5, [], note(leaves(5, b"forked"))) == 409  # a fork at the same size
    assert submit(state, 5, [], note(five)) == 200  # the same checkpoint again: cosigned again
    other = Ed25519PrivateKey.generate()
    assert submit(state, 5, good, note(eight, key=other)) == 403  # not the pinned key
    assert submit(fresh, 0, good[:1], note(five)) == 422  # a first checkpoint with a proof


def test_a_witness_ignores_unknown_signatures_and_the_client_strips_the_witnesses() -> None:
    eight = leaves(8)
    other = Ed25519PrivateKey.generate()
    foreign = sign_note(note(eight).split("\n\n")[0] + "\n", "someone.else", other)
    both = note(eight) + foreign.split("\n\n")[1]  # the log's line, then an unknown signer's
    assert submit(WitnessState(ORIGIN, LOG_PUBLIC), 0, [], both) == 200
    cosigned = note(eight) + cosigner(note(eight).split("\n\n")[0] + "\n", NOW)
    assert own_note(cosigned, ORIGIN) == note(eight)
