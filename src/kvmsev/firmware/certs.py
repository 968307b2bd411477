"""SEV certificates (0x824 bytes) and a platform's key identity (CEK, OCA, PEK, PDH).

Layout (SEV API §B.1; firmware reference §4.3; checked against virtee/sev's real Naples and Rome
certificates): version u32 (1) @0, api major/minor @4/5, key usage u32 @8, algorithm u32 @0xC,
then the key: curve u32 @0x10 (P-384 = 2), Qx @0x14 and Qy @0x5C (each 72 bytes, little-endian);
the body ends at 0x414. Two signature slots follow, each usage u32, algorithm u32, R and S (72
bytes each, little-endian) at 0x414 and 0x61C; an empty slot has usage 0x1000 and algorithm 0.
A signature is ECDSA P-384 with SHA-256 over the body (bytes 0x000-0x413).

Who signs whom on a platform: the OCA signs itself, the PEK is signed by the OCA (slot 1) and the
CEK (slot 2), the PDH by the PEK. The CEK is signed by AMD's ASK, an RSA key this model does not
have: its slots stay empty, and the AMD chain (ASK, ARK) is not modeled.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, replace

from cryptography.hazmat.primitives.asymmetric import ec

from kvmsev.firmware import crypto

CERT_LEN = 0x824
BODY_LEN = 0x414
_FIELD = 72
_SIG_SLOTS = (0x414, 0x61C)
CURVE_P384 = 2


class Usage(enum.IntEnum):
    """Key usage (SEV API §B.1)."""

    OCA = 0x1001
    PEK = 0x1002
    PDH = 0x1003
    CEK = 0x1004
    NONE = 0x1000


class Algo(enum.IntEnum):
    NONE = 0
    ECDSA_SHA256 = 2
    ECDH_SHA256 = 3


@dataclass(frozen=True, slots=True)
class Signature:
    usage: int = Usage.NONE
    algo: int = Algo.NONE
    r: int = 0
    s: int = 0


EMPTY = Signature()


@dataclass(frozen=True, slots=True)
class SevCert:
    usage: int
    algo: int
    x: int
    y: int
    api_major: int = 0
    api_minor: int = 0
    version: int = 1
    curve: int = CURVE_P384
    sigs: tuple[Signature, Signature] = (EMPTY, EMPTY)

    def body(self) -> bytes:
        out = bytearray(BODY_LEN)
        out[0:4] = self.version.to_bytes(4, "little")
        out[4] = self.api_major
        out[5] = self.api_minor
        out[8:12] = self.usage.to_bytes(4, "little")
        out[12:16] = self.algo.to_bytes(4, "little")
        out[16:20] = self.curve.to_bytes(4, "little")
        out[0x14 : 0x14 + _FIELD] = self.x.to_bytes(_FIELD, "little")
        out[0x5C : 0x5C + _FIELD] = self.y.to_bytes(_FIELD, "little")
        return bytes(out)

    def encode(self) -> bytes:
        return _encode(self)

    def _encode(self) -> bytes:
        out = bytearray(self.body()) + bytearray(CERT_LEN - BODY_LEN)
        for slot, sig in zip(_SIG_SLOTS, self.sigs, strict=True):
            out[slot : slot + 4] = sig.usage.to_bytes(4, "little")
            out[slot + 4 : slot + 8] = sig.algo.to_bytes(4, "little")
            out[slot + 8 : slot + 8 + _FIELD] = sig.r.to_bytes(_FIELD, "little")
            out[slot + 8 + _FIELD : slot + 8 + 2 * _FIELD] = sig.s.to_bytes(_FIELD, "little")
        return bytes(out)

    def public_key(self) -> ec.EllipticCurvePublicKey | None:
        return crypto.public_key(self.x, self.y) if self.curve == CURVE_P384 else None


@functools.lru_cache(maxsize=1024)
def _encode(cert: SevCert) -> bytes:
    return cert._encode()


def decode(data: bytes) -> SevCert | None:
    """Parse a certificate; None when it is not 0x824 bytes."""
    if len(data) != CERT_LEN:
        return None

    def u32(offset: int) -> int:
        return int.from_bytes(data[offset : offset + 4], "little")

    def field(offset: int) -> int:
        return int.from_bytes(data[offset : offset + _FIELD], "little")

    sigs = tuple(
        Signature(u32(slot), u32(slot + 4), field(slot + 8), field(slot + 8 + _FIELD)) for slot in _SIG_SLOTS
    )
    return SevCert(
        usage=u32(8),
        algo=u32(12),
        x=field(0x14),
        y=field(0x5C),
        api_major=data[4],
        api_minor=data[5],
        version=u32(0),
        curve=u32(16),
        sigs=(sigs[0], sigs[1]),
    )


def certify(subject: SevCert, signer_usage: Usage, signer: ec.EllipticCurvePrivateKey, slot: int) -> SevCert:
    """``subject`` with signature ``slot`` (0 or 1) made by ``signer`` over its body."""
    r, s = crypto.sign(signer, subject.body())
    sigs = list(subject.sigs)
    sigs[slot] = Signature(signer_usage, Algo.ECDSA_SHA256, r, s)
    return replace(subject, sigs=(sigs[0], sigs[1]))


def is_signed_by(subject: SevCert, signer: SevCert, slot: int) -> bool:
    """Signature ``slot`` of ``subject`` names ``signer``'s usage and verifies with its key."""
    sig = subject.sigs[slot]
    key = signer.public_key()
    return sig.usage == signer.usage and key is not None and crypto.verify(key, subject.body(), sig.r, sig.s)


def key_cert(key: ec.EllipticCurvePrivateKey, usage: Usage, api: tuple[int, int] = (0, 0)) -> SevCert:
    x, y = crypto.public_numbers(key)
    algo = Algo.ECDH_SHA256 if usage is Usage.PDH else Algo.ECDSA_SHA256
    return SevCert(usage, algo, x, y, api_major=api[0], api_minor=api[1])


@dataclass(slots=True)
class PlatformIdentity:
    """A platform's keys and certificates as the firmware keeps them (persistent across reboots).

    Keys come from ``seed`` and a generation counter, so PEK_GEN and PDH_GEN give new ones and a
    model run stays reproducible.
    """

    seed: bytes
    api: tuple[int, int]
    generation: int = 0
    cek: ec.EllipticCurvePrivateKey | None = None
    oca: ec.EllipticCurvePrivateKey | None = None
    pek: ec.EllipticCurvePrivateKey | None = None
    pdh: ec.EllipticCurvePrivateKey | None = None
    cek_cert: SevCert | None = None
    oca_cert: SevCert | None = None
    pek_cert: SevCert | None = None
    pdh_cert: SevCert | None = None

    def _key(self, name: str) -> ec.EllipticCurvePrivateKey:
        self.generation += 1
        return crypto.private_key(self.seed + f":{name}:{self.generation}".encode())

    def ensure(self) -> None:
        """Create what is missing (the firmware does it at INIT): the CEK, which is derived from
        the chip and never changes, then an OCA, PEK and PDH."""
        if self.cek is None:
            self.cek = crypto.private_key(self.seed + b":cek")
            self.cek_cert = key_cert(self.cek, Usage.CEK, self.api)
        if self.pek is None:
            self.pek_gen()

    def reset(self) -> None:
        """PLATFORM_RESET: the OCA, PEK and PDH are erased; the next use makes new ones."""
        self.oca = self.pek = self.pdh = None
        self.oca_cert = self.pek_cert = self.pdh_cert = None

    def pek_gen(self) -> None:
        """PEK_GEN: a new self-signed OCA, a new PEK (signed by OCA and CEK), a new PDH."""
        assert self.cek is not None
        self.oca = self._key("oca")
        self.oca_cert = certify(key_cert(self.oca, Usage.OCA, self.api), Usage.OCA, self.oca, 0)
        self.pek = self._key("pek")
        pek = certify(key_cert(self.pek, Usage.PEK, self.api), Usage.OCA, self.oca, 0)
        self.pek_cert = certify(pek, Usage.CEK, self.cek, 1)
        self.pdh_gen()

    def pdh_gen(self) -> None:
        """PDH_GEN: a new PDH key pair, signed by the PEK."""
        assert self.pek is not None
        self.pdh = self._key("pdh")
        self.pdh_cert = certify(key_cert(self.pdh, Usage.PDH, self.api), Usage.PEK, self.pek, 0)

    def chain(self) -> bytes:
        """PDH_CERT_EXPORT's certificate chain: PEK || OCA || CEK."""
        assert self.pek_cert and self.oca_cert and self.cek_cert
        return self.pek_cert.encode() + self.oca_cert.encode() + self.cek_cert.encode()


def chain_is_valid(pdh: SevCert, chain: bytes) -> bool:
    """The target-platform check of SEND_START for an SEV or DOMAIN policy, as far as it is
    modeled: the PDH is signed by the chain's PEK, the PEK by its OCA and CEK, the OCA by itself."""
    if len(chain) != 3 * CERT_LEN:
        return False
    pek, oca, cek = (decode(chain[i * CERT_LEN : (i + 1) * CERT_LEN]) for i in range(3))
    if pek is None or oca is None or cek is None:
        return False
    return (
        pek.usage == Usage.PEK
        and oca.usage == Usage.OCA
        and cek.usage == Usage.CEK
        and is_signed_by(pdh, pek, 0)
        and is_signed_by(pek, oca, 0)
        and is_signed_by(pek, cek, 1)
        and is_signed_by(oca, oca, 0)
    )
