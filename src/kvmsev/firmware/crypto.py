"""The cryptographic primitives the SEV API is built from, on the ``cryptography`` library.

* AES-128-CTR with the whole 16-byte IV as the initial counter block (big-endian increment):
  transport encryption under the TEK and the TEK/TIK wrap under the KEK (SEV API §2.2).
* HMAC-SHA256: every MAC and the launch measurement.
* The key derivation function: NIST SP 800-108 in counter mode with HMAC-SHA256 as the PRF,
  block i = HMAC(key, LE32(i) || label || 0x00 || context || LE32(bits)) (SEV API §2.2.2; the
  firmware reference §5.3; checked against virtee/sev's published vectors in the tests).
* ECDH on P-384, whose shared secret is the x-coordinate, 48 bytes big-endian; ECDSA P-384 over
  SHA-256 for certificate and attestation-report signatures.

Keys the model must be able to reproduce (a platform's identity, a guest owner's DH key) are
derived from a seed, so that a scenario gives the same bytes on every run.
"""

from __future__ import annotations

import functools
import hashlib
import hmac as std_hmac

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

CURVE = ec.SECP384R1()
#: order of the P-384 group
P384_ORDER = (
    0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973
)
KEY_LEN = 16


def aes128_ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-128 in counter mode; encryption and decryption are the same operation."""
    encryptor = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return std_hmac.new(key, data, hashlib.sha256).digest()


def kdf(key: bytes, label: bytes, context: bytes = b"", length: int = KEY_LEN) -> bytes:
    """SP 800-108 counter-mode KDF with HMAC-SHA256, ``length`` bytes."""
    bits = (length * 8).to_bytes(4, "little")
    out = b""
    counter = 1
    while len(out) < length:
        out += hmac_sha256(key, counter.to_bytes(4, "little") + label + b"\x00" + context + bits)
        counter += 1
    return out[:length]


@functools.lru_cache(maxsize=4096)
def private_key(seed: bytes) -> ec.EllipticCurvePrivateKey:
    """A P-384 private key derived from ``seed`` (a reproducible stand-in for a fresh key).
    Cached: the same seed always gives the same key object."""
    scalar = int.from_bytes(hashlib.sha512(seed).digest(), "big") % (P384_ORDER - 1) + 1
    return ec.derive_private_key(scalar, CURVE)


def public_numbers(key: ec.EllipticCurvePrivateKey) -> tuple[int, int]:
    numbers = key.public_key().public_numbers()
    return numbers.x, numbers.y


def public_key(x: int, y: int) -> ec.EllipticCurvePublicKey | None:
    """The P-384 point (x, y), or None when it is not on the curve."""
    try:
        return ec.EllipticCurvePublicNumbers(x, y, CURVE).public_key()
    except ValueError:
        return None


def shared_secret(mine: ec.EllipticCurvePrivateKey, theirs: ec.EllipticCurvePublicKey) -> bytes:
    """ECDH: the x-coordinate of the shared point, 48 bytes big-endian."""
    numbers = theirs.public_numbers()
    return _shared_secret(mine, numbers.x, numbers.y)


@functools.lru_cache(maxsize=4096)
def _shared_secret(mine: ec.EllipticCurvePrivateKey, x: int, y: int) -> bytes:
    theirs = ec.EllipticCurvePublicNumbers(x, y, CURVE).public_key()
    return mine.exchange(ec.ECDH(), theirs)


@functools.lru_cache(maxsize=4096)
def sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> tuple[int, int]:
    """ECDSA with SHA-256: (r, s). The nonce is derived as RFC 6979 does, so the same key and
    data give the same signature (the firmware draws it at random; reproducible runs need this),
    which also makes the result safe to cache."""
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True)))
    return r, s


def verify(key: ec.EllipticCurvePublicKey, data: bytes, r: int, s: int) -> bool:
    try:
        key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True
