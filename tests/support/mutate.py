"""Byte-level mutations of valid messages, for fuzzing decoders with hypothesis."""

from __future__ import annotations

from hypothesis import strategies as st

Mutation = tuple[str, int, int, bytes]

OPS = ("flip", "insert", "delete", "truncate", "set32")


def mutations(ops: tuple[str, ...] = OPS, max_size: int = 5) -> st.SearchStrategy[list[Mutation]]:
    return st.lists(st.tuples(st.sampled_from(ops), st.integers(0, 10_000),
                              st.integers(0, 2**32 - 1), st.binary(min_size=1, max_size=8)),
                    max_size=max_size)


def mutate(data: bytes, muts: list[Mutation]) -> bytes:
    """Apply ``muts`` in order: flip a bit, insert bytes, delete or truncate, or overwrite four
    bytes with a big-endian u32 (lengths and counts that lie)."""
    buf = bytearray(data)
    for op, where, arg, blob in muts:
        pos = where % max(len(buf), 1)
        if op == "flip" and buf:
            buf[pos] ^= 1 << (arg % 8)
        elif op == "insert":
            buf[pos:pos] = blob
        elif op == "delete":
            del buf[pos:pos + arg % 8 + 1]
        elif op == "truncate":
            del buf[pos:]
        elif op == "set32":
            buf[pos:pos + 4] = arg.to_bytes(4, "big")
    return bytes(buf)
