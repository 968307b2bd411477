"""AES-128 (FIPS-197) block encryption and CTR mode, in plain Python.

The firmware model needs AES only where the SEV API puts secrets through the transport key: the
LAUNCH_SECRET payload is AES-128-CTR under the TEK (SEV API §6.6; firmware reference §5.3). It is
rare and small, so a table-free implementation is fast enough and keeps the package free of
compiled dependencies. Checked against FIPS-197 appendix C.1 and SP 800-38A F.5.1 in the tests.
"""

from __future__ import annotations


def _xtime(a: int) -> int:
    a <<= 1
    return (a ^ 0x11B) & 0xFF if a & 0x100 else a


def _build_sbox() -> tuple[int, ...]:
    # multiplicative inverse in GF(2^8) followed by the affine transform
    inverse = [0] * 256
    for a in range(1, 256):
        for b in range(1, 256):
            x, y, product = a, b, 0
            while y:
                if y & 1:
                    product ^= x
                x = _xtime(x)
                y >>= 1
            if product == 1:
                inverse[a] = b
                break
    box = []
    for a in range(256):
        v = inverse[a]
        s = v
        for _ in range(4):
            v = ((v << 1) | (v >> 7)) & 0xFF
            s ^= v
        box.append(s ^ 0x63)
    return tuple(box)


SBOX = _build_sbox()


def _expand_key(key: bytes) -> list[list[int]]:
    if len(key) != 16:
        raise ValueError("AES-128 needs a 16-byte key")
    words = [list(key[i : i + 4]) for i in range(0, 16, 4)]
    rcon = 1
    for i in range(4, 44):
        temp = list(words[i - 1])
        if i % 4 == 0:
            temp = temp[1:] + temp[:1]
            temp = [SBOX[b] for b in temp]
            temp[0] ^= rcon
            rcon = _xtime(rcon)
        words.append([a ^ b for a, b in zip(words[i - 4], temp, strict=True)])
    return [[b for word in words[r * 4 : r * 4 + 4] for b in word] for r in range(11)]


def _mix_column(col: list[int]) -> list[int]:
    a0, a1, a2, a3 = col
    t = a0 ^ a1 ^ a2 ^ a3
    return [
        a0 ^ t ^ _xtime(a0 ^ a1),
        a1 ^ t ^ _xtime(a1 ^ a2),
        a2 ^ t ^ _xtime(a2 ^ a3),
        a3 ^ t ^ _xtime(a3 ^ a0),
    ]


def encrypt_block(key: bytes, block: bytes) -> bytes:
    """One AES-128 block encryption."""
    round_keys = _expand_key(key)
    state = [b ^ k for b, k in zip(block, round_keys[0], strict=True)]
    for rnd in range(1, 11):
        state = [SBOX[b] for b in state]
        # ShiftRows on a column-major state: byte (row r, col c) is at index 4c + r
        state = [state[(4 * ((i // 4 + i % 4) % 4)) + i % 4] for i in range(16)]
        if rnd != 10:
            state = [b for c in range(4) for b in _mix_column(state[c * 4 : c * 4 + 4])]
        state = [b ^ k for b, k in zip(state, round_keys[rnd], strict=True)]
    return bytes(state)


def ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-128-CTR with a 128-bit big-endian counter starting at ``iv`` (SP 800-38A)."""
    counter = int.from_bytes(iv, "big")
    out = bytearray()
    for offset in range(0, len(data), 16):
        stream = encrypt_block(key, counter.to_bytes(16, "big"))
        chunk = data[offset : offset + 16]
        out += bytes(a ^ b for a, b in zip(chunk, stream, strict=False))
        counter = (counter + 1) % (1 << 128)
    return bytes(out)
