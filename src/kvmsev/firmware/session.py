"""The secure channel of the SEV API: session blobs and transport packets (SEV API §2.2, §6.2,
§6.6, §7; firmware reference §5.3).

A session is established between a platform's PDH and a peer's ECDH key: the guest owner's DH
certificate at LAUNCH_START, or the source platform's PDH at RECEIVE_START. Both ends derive

    Z      = ECDH x-coordinate
    master = KDF(Z, "sev-master-secret", nonce)
    KEK    = KDF(master, "sev-kek"); KIK = KDF(master, "sev-kik")

and the 128-byte blob carries ``nonce (16) || wrap_tk (32) || wrap_iv (16) || wrap_mac (32) ||
policy_mac (32)`` with ``wrap_tk = AES-128-CTR(KEK, wrap_iv, TEK || TIK)``, ``wrap_mac =
HMAC(KIK, wrap_tk)`` and ``policy_mac = HMAC(TIK, LE32 policy)``.

Packets (LAUNCH_SECRET, SEND/RECEIVE_UPDATE_DATA) carry a 52-byte header ``flags (4) || iv (16)
|| mac (32)``; the payload is AES-128-CTR under the TEK and the MAC is HMAC(TIK, context ||
flags || iv || LE32 guest_len || LE32 trans_len || ciphertext [|| measurement]) with context 1
for a secret (followed by the 32-byte launch measurement) and 2 for guest data.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from kvmsev.firmware import crypto
from kvmsev.firmware.certs import Algo, SevCert, Usage

SESSION_LEN = 128
HEADER_LEN = 52
CONTEXT_SECRET = 0x01
CONTEXT_DATA = 0x02
FLAG_COMPRESSED = 0x1


@dataclass(frozen=True, slots=True)
class Session:
    """The contents of a session blob."""

    nonce: bytes
    wrap_tk: bytes
    wrap_iv: bytes
    wrap_mac: bytes
    policy_mac: bytes

    def encode(self) -> bytes:
        return self.nonce + self.wrap_tk + self.wrap_iv + self.wrap_mac + self.policy_mac

    @classmethod
    def decode(cls, data: bytes) -> Session:
        return cls(data[0:16], data[16:48], data[48:64], data[64:96], data[96:128])


def kek_kik(shared: bytes, nonce: bytes) -> tuple[bytes, bytes]:
    """KEK and KIK from the ECDH shared secret and the session nonce."""
    master = crypto.kdf(shared, b"sev-master-secret", nonce)
    return crypto.kdf(master, b"sev-kek"), crypto.kdf(master, b"sev-kik")


def _kek_kik(
    mine: ec.EllipticCurvePrivateKey, theirs: ec.EllipticCurvePublicKey, nonce: bytes
) -> tuple[bytes, bytes]:
    return kek_kik(crypto.shared_secret(mine, theirs), nonce)


def wrap_keys(
    kek: bytes, kik: bytes, tek: bytes, tik: bytes, policy: int, nonce: bytes, iv: bytes
) -> Session:
    """The blob for given KEK and KIK."""
    wrapped = crypto.aes128_ctr(kek, iv, tek + tik)
    return Session(nonce, wrapped, iv, crypto.hmac_sha256(kik, wrapped), policy_mac(tik, policy))


def policy_mac(tik: bytes, policy: int) -> bytes:
    return crypto.hmac_sha256(tik, policy.to_bytes(4, "little"))


def wrap(
    mine: ec.EllipticCurvePrivateKey,
    peer_pdh: SevCert,
    tek: bytes,
    tik: bytes,
    policy: int,
    nonce: bytes,
    iv: bytes,
) -> Session:
    """The sending end: wrap TEK and TIK for the holder of ``peer_pdh``'s private key."""
    peer = peer_pdh.public_key()
    assert peer is not None, "a PDH certificate read back from the platform holds a P-384 point"
    kek, kik = _kek_kik(mine, peer, nonce)
    return wrap_keys(kek, kik, tek, tik, policy, nonce, iv)


@dataclass(frozen=True, slots=True)
class Opened:
    """What the receiving end got out of a blob, or which check failed (``problem``)."""

    tek: bytes = b""
    tik: bytes = b""
    problem: str | None = None


def unwrap(pdh: ec.EllipticCurvePrivateKey, peer_cert: SevCert, blob: bytes, policy: int) -> Opened:
    """The receiving end (the firmware at LAUNCH_START / RECEIVE_START), in the firmware's order:
    the peer's certificate must be a P-384 ECDH PDH key; then the wrap MAC, the unwrap, and the
    policy MAC with the unwrapped TIK."""
    peer = peer_cert.public_key()
    if peer_cert.usage != Usage.PDH or peer_cert.algo != Algo.ECDH_SHA256 or peer is None:
        return Opened(problem="certificate")
    session = Session.decode(blob)
    kek, kik = _kek_kik(pdh, peer, session.nonce)
    if not hmac.compare_digest(crypto.hmac_sha256(kik, session.wrap_tk), session.wrap_mac):
        return Opened(problem="wrap_mac")
    keys = crypto.aes128_ctr(kek, session.wrap_iv, session.wrap_tk)
    tek, tik = keys[:16], keys[16:]
    if not hmac.compare_digest(policy_mac(tik, policy), session.policy_mac):
        return Opened(problem="policy_mac")
    return Opened(tek, tik)


def packet_mac(
    tik: bytes, context: int, flags: int, iv: bytes, guest_len: int, trans: bytes, suffix: bytes = b""
) -> bytes:
    message = (
        bytes([context])
        + flags.to_bytes(4, "little")
        + iv
        + guest_len.to_bytes(4, "little")
        + len(trans).to_bytes(4, "little")
        + trans
        + suffix
    )
    return crypto.hmac_sha256(tik, message)


def seal(
    tek: bytes, tik: bytes, context: int, iv: bytes, plain: bytes, suffix: bytes = b"", flags: int = 0
) -> tuple[bytes, bytes]:
    """(header, transport data) of a packet carrying ``plain``."""
    trans = crypto.aes128_ctr(tek, iv, plain)
    mac = packet_mac(tik, context, flags, iv, len(plain), trans, suffix)
    return flags.to_bytes(4, "little") + iv + mac, trans


def header_fields(header: bytes) -> tuple[int, bytes, bytes]:
    """(flags, iv, mac) of a 52-byte packet header."""
    return int.from_bytes(header[:4], "little"), header[4:20], header[20:52]
