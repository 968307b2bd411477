"""Small firmware images in OVMF's format, for tests that must not depend on an installed OVMF.

An image is 0xFF (erased flash) with a text header, the GUIDed footer table OVMF carries before
its last 32 bytes (the entries an SEV launch reads: SEV-ES reset block, SEV hashes table area,
SEV secret area), and 32 bytes standing for the reset vector. Measurement depends only on the
bytes and on the table, so these images are valid inputs for kvmsev and for sev-snp-measure
alike. ``examples/measurement/ovmf-synthetic.fd`` is :func:`synthetic_ovmf` with its defaults.
"""

from __future__ import annotations

import struct
from uuid import UUID

from kvmsev.host.ovmf import (
    FOOTER_GUID,
    SEV_ES_RESET_BLOCK_GUID,
    SEV_HASH_TABLE_AREA_GUID,
    SEV_SECRET_AREA_GUID,
)

HEADER = b"kvmsev synthetic OVMF-format image: an SEV footer table, no firmware\n"
#: where OVMF's AmdSev build (edk2-stable202405) starts APs and keeps its SEV areas
RESET_ADDR = 0x80B004
HASH_TABLE_AREA = (0x810C00, 0x400)
SECRET_AREA = (0x810000, 0xC00)


def entry(guid: UUID, data: bytes) -> bytes:
    """One table entry: its data, then its length (data + 18) and GUID."""
    return data + struct.pack("<H", len(data) + 18) + guid.bytes_le


def footer_table(entries: bytes) -> bytes:
    """Entries followed by the footer (the total length, then the footer GUID)."""
    return entries + struct.pack("<H", len(entries) + 18) + FOOTER_GUID.bytes_le


def synthetic_ovmf(
    size: int = 0x4000,
    reset_addr: int | None = RESET_ADDR,
    hash_table_area: tuple[int, int] | None = HASH_TABLE_AREA,
    secret_area: tuple[int, int] | None = SECRET_AREA,
    fill: bytes = b"\xff",
) -> bytes:
    """An image of ``size`` bytes whose table holds the entries not given as None."""
    entries = b""
    if secret_area is not None:
        entries += entry(SEV_SECRET_AREA_GUID, struct.pack("<II", *secret_area))
    if hash_table_area is not None:
        entries += entry(SEV_HASH_TABLE_AREA_GUID, struct.pack("<II", *hash_table_area))
    if reset_addr is not None:
        entries += entry(SEV_ES_RESET_BLOCK_GUID, struct.pack("<I", reset_addr))
    table = footer_table(entries)
    image = bytearray(fill * size)
    image[: len(HEADER)] = HEADER
    image[size - 32 - len(table) : size - 32] = table
    image[size - 32 :] = b"reset vector stand-in".ljust(32, b"\0")
    return bytes(image)
