"""The launch digest and the launch measurement, computed once for the firmware model and for a
guest owner who predicts them.

* Launch digest (LD; SEV API §6.5-6.7, firmware reference §5.2): SHA-256 over the plaintext of
  every LAUNCH_UPDATE_DATA and LAUNCH_UPDATE_VMSA, in the order the commands were issued. The
  firmware hashes each update as it arrives (the running hash in
  :class:`~kvmsev.firmware.guest.GuestContext`); :func:`launch_digest` is the same hash over
  the whole sequence, for a guest owner who knows what will be loaded.
* Measurement (SEV API §6.8, LAUNCH_MEASURE): HMAC-SHA256 keyed by the TIK over
  ``0x04 || API_MAJOR || API_MINOR || BUILD || POLICY (LE32) || LD || MNONCE``. The command
  returns the 32-byte HMAC followed by the 16-byte MNONCE, the blob QEMU's
  ``query-sev-launch-measure`` hands out in base64. Without a launch session the firmware's TIK
  is sixteen zero bytes. sevctl's ``measurement build`` computes the same message (its published
  vectors, including one measured on real hardware, are checked in the tests).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from kvmsev.firmware import crypto

#: the context byte that starts the measured message (the firmware's MEASURE context)
CONTEXT_MEASURE = 0x04
MNONCE_LEN = 16
#: HMAC (32) || MNONCE (16): what LAUNCH_MEASURE writes back
MEASUREMENT_LEN = 48


def launch_digest(updates: Iterable[bytes]) -> bytes:
    """SHA-256 of every launch update's plaintext, in command order."""
    running = hashlib.sha256()
    for update in updates:
        running.update(update)
    return running.digest()


def launch_measurement(
    tik: bytes, api: tuple[int, int, int], policy: int, digest: bytes, mnonce: bytes
) -> bytes:
    """The 32-byte HMAC LAUNCH_MEASURE returns before the nonce; ``api`` is the running
    firmware's (major, minor, build), each one byte."""
    major, minor, build = api
    message = bytes([CONTEXT_MEASURE, major, minor, build]) + policy.to_bytes(4, "little") + digest + mnonce
    return crypto.hmac_sha256(tik, message)
