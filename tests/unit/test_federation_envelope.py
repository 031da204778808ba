"""Signed batches: sealing, opening, and every reason a batch is refused (issue 13)."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from millnet.errors import RejectedMessage
from millnet.federation import envelope
from millnet.federation.identity import NodeIdentity
from millnet.protocols.federation import (
    VERSION,
    Message,
    OutBatch,
    OutMessage,
    decode_payload,
    encode_payload,
    peek_sender,
)

CHILD = NodeIdentity.generate("plant-7")
OTHER = NodeIdentity.generate("plant-8")
KEYS = {"plant-7": CHILD.public_key_bytes, "plant-8": OTHER.public_key_bytes}
NOW = 1_800_000_000_000
WINDOW = 120_000


def batch(sender: str = "plant-7", recipient: str = "prov-32", sent_at: int = NOW,
          messages: int = 2) -> OutBatch:
    return OutBatch(
        v=VERSION, sender=sender, recipient=recipient, sent_at=sent_at,
        nonce=envelope.new_nonce(), ack=0,
        messages=[OutMessage(i + 1, NOW, "security.event", sender,
                             msgspec.Raw(b'{"n":%d}' % i)) for i in range(messages)])


def open_(data: bytes, max_bytes: int = 4096) -> object:
    return envelope.open_sealed(data, me="prov-32", key_of=KEYS.get, max_bytes=max_bytes,
                                window_ms=WINDOW, now=NOW)


def reason(data: bytes, **kw: int) -> str:
    with pytest.raises(RejectedMessage) as caught:
        open_(data, **kw)
    return caught.value.reason


def test_a_sealed_batch_opens_to_the_same_messages() -> None:
    sent = batch()
    opened = envelope.open_sealed(envelope.seal(CHILD, sent), me="prov-32", key_of=KEYS.get,
                                  max_bytes=4096, window_ms=WINDOW, now=NOW + 5_000)
    assert opened.sender == "plant-7" and opened.nonce == sent.nonce
    assert opened.messages == [Message(1, NOW, "security.event", "plant-7", {"n": 0}),
                               Message(2, NOW, "security.event", "plant-7", {"n": 1})]


def test_each_rejection_has_its_reason() -> None:
    good = envelope.seal(CHILD, batch())
    assert reason(good, max_bytes=len(good) - 1) == "oversized"
    assert reason(good[:64] + b"{not json") == "malformed"
    assert reason(good[:10]) == "malformed"
    assert reason(envelope.seal(CHILD, batch(sender="stranger"))) == "unknown_sender"
    assert reason(envelope.seal(CHILD, batch(recipient="prov-33"))) == "wrong_recipient"
    # Signed by plant-7's key but claiming to be plant-8: A cannot speak as B.
    assert reason(envelope.seal(CHILD, batch(sender="plant-8"))) == "bad_signature"
    tampered = bytearray(good)
    tampered[-5] ^= 1
    assert reason(bytes(tampered)) in ("bad_signature", "malformed")
    assert reason(envelope.seal(CHILD, batch(sent_at=NOW - WINDOW - 1))) == "out_of_window"
    assert reason(envelope.seal(CHILD, batch(sent_at=NOW + WINDOW + 1))) == "out_of_window"


def test_a_wrong_version_is_malformed() -> None:
    payload = encode_payload(batch()).replace(b'"v":1', b'"v":2')
    with pytest.raises(RejectedMessage, match="version"):
        decode_payload(payload)


def test_peek_sender_reads_the_claim_only() -> None:
    assert peek_sender(encode_payload(batch())) == "plant-7"
    assert peek_sender(b"\xff\x00garbage") == ""


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_garbage_only_ever_gives_a_counted_rejection(data: bytes) -> None:
    with pytest.raises(RejectedMessage) as caught:
        open_(data)
    assert caught.value.reason in envelope.STATUS


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["v", "sender", "recipient", "sent_at", "nonce", "ack",
                                        "messages", "reply_to", "stats", "x"]), json_values))
def test_json_of_the_wrong_shape_is_malformed_never_a_crash(doc: dict[str, object]) -> None:
    data = b"\0" * 64 + msgspec.json.encode(doc)
    with pytest.raises(RejectedMessage) as caught:
        open_(data, max_bytes=1 << 20)
    assert caught.value.reason in envelope.STATUS


def test_deep_nesting_is_malformed() -> None:
    payload = encode_payload(batch(messages=0)).replace(
        b'"messages":[]', b'"messages":[[1,1,"a","b",{"x":' + b"[" * 100_000
        + b"]" * 100_000 + b"}]]")
    assert reason(b"\0" * 64 + payload, max_bytes=1 << 20) == "malformed"


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 400), st.integers(0, 255))
def test_any_flipped_byte_is_refused(position: int, flip: int) -> None:
    good = envelope.seal(CHILD, batch())
    i = position % len(good)
    mutated = good[:i] + bytes([good[i] ^ (flip or 1)]) + good[i + 1:]
    with pytest.raises(RejectedMessage):
        open_(mutated)
