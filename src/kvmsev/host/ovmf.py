"""An OVMF firmware image as QEMU reads it when it starts an SEV or SEV-ES guest, and the SEV
hashes table QEMU builds for OVMF's measured direct kernel boot.

**The GUIDed footer table** (QEMU ``hw/i386/pc_sysfw_ovmf.c``, ``pc_system_parse_ovmf_flash``
and ``pc_system_ovmf_table_find``; OVMF ``OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm``). OVMF
ends with 32 bytes of reset-vector code. Just before them sits the table's footer: a 16-bit total
length (counting every entry and the footer's own 18 bytes) followed by the footer GUID. The
entries are read backwards from there, each ending in its own 16-bit length (data + 18) and
GUID, its data the bytes before them. QEMU keeps the first entry it meets for a GUID, walking
from the footer; sev-snp-measure (``sevsnpmeasure/ovmf.py``) reads the same table. The entries
an SEV launch uses:

* SEV-ES reset block: a 32-bit address where every AP starts (``sev_es_save_reset_vector``, QEMU
  ``target/i386/sev.c``); without it QEMU refuses to start an SEV-ES guest ("failed to locate
  and/or save reset vector").
* SEV hashes table area: a 32-bit base and size in guest memory where QEMU puts the hashes
  table (``sev_add_kernel_loader_hashes``); base 0 or a size under 176 makes QEMU refuse
  ``-kernel`` with ``kernel-hashes=on`` ("guest firmware hashes table area is invalid").
  Debian's OVMF builds (OvmfPkgX64) carry the entry with base and size 0: only OVMF's AmdSev
  package reserves the area.
* SEV secret area: base and size of the page ``sev-inject-launch-secret`` writes by default.

QEMU's older fallback for images without a table (the SEV-ES GUID just before the last 32
bytes) is not modeled: every OVMF with SEV-ES support since 2021 has the table.

**The SEV hashes table** (QEMU ``target/i386/sev.c``, ``SevHashTable`` / ``PaddedSevHashTable``
and ``sev_add_kernel_loader_hashes``; OVMF ``OvmfPkg/AmdSev/BlobVerifierLibSevHashes``): the
table GUID and its 16-bit length 168, then three entries of GUID, 16-bit length 50 and SHA-256
-- the command line (its bytes up to the first NUL, and that NUL), the initrd (empty when there
is none) and the kernel file -- zero-padded to 176 bytes, a multiple of 16 as
LAUNCH_UPDATE_DATA requires. QEMU hashes the bzImage as it is in the file: with SEV it leaves the
setup header unpatched for exactly this reason.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from uuid import UUID

#: the largest image read: QEMU's pc machines map at most 8 MiB of flash unless ``max-fw-size``
#: raises it, and LAUNCH_UPDATE_DATA measures the whole image at once
MAX_FIRMWARE = 16 << 20
#: QEMU's pflash sector (``FLASH_SECTOR_SIZE``): a flash image is a non-zero multiple of it
#: (``pc_system_flash_map``: "its size must be a non-zero multiple of 0x1000")
FLASH_SECTOR_SIZE = 4096
#: the largest kernel or initrd hashed (QEMU loads both below 4 GiB)
MAX_BOOT_FILE = 1 << 30

#: the table's footer, just before the last 32 bytes of the image
FOOTER_GUID = UUID("96b582de-1fb2-45f7-baea-a366c55a082d")
SEV_ES_RESET_BLOCK_GUID = UUID("00f771de-1a7e-4fcb-890e-68c77e2fb44e")
SEV_HASH_TABLE_AREA_GUID = UUID("7255371f-3a3b-4b04-927b-1da6efa8d454")
SEV_SECRET_AREA_GUID = UUID("4c2eb361-7d9b-4cc3-8081-127c90d3d294")
#: bytes after the table: OVMF's reset vector
RESET_VECTOR_LEN = 32
#: an entry's trailer (and the footer): 16-bit length, then the GUID
TRAILER_LEN = 2 + 16

SEV_HASH_TABLE_GUID = UUID("9438d606-4f22-4cc9-b479-a793d411fd21")
SEV_CMDLINE_ENTRY_GUID = UUID("97d02dd8-bd20-4c94-aa78-e7714d36ab2a")
SEV_INITRD_ENTRY_GUID = UUID("44baf731-3a2f-4bd7-9af1-41e29169781d")
SEV_KERNEL_ENTRY_GUID = UUID("4de79437-abd2-427f-b835-d5b172d2045b")
#: GUID, 16-bit length, SHA-256
HASH_ENTRY_LEN = 16 + 2 + 32
#: GUID, 16-bit length, three entries (the length the table states)
HASH_TABLE_LEN = 16 + 2 + 3 * HASH_ENTRY_LEN
#: what QEMU loads: the table rounded up to 16 bytes
PADDED_HASH_TABLE_LEN = 176


@dataclass(frozen=True, slots=True)
class Area:
    """A range of guest physical memory an OVMF table entry reserves."""

    base: int
    size: int


def footer_table(image: bytes) -> dict[UUID, bytes]:
    """The entries of the image's GUIDed footer table, GUID -> data; empty when the image has
    no table (no footer GUID, or a total length that does not fit the image)."""
    end = len(image) - RESET_VECTOR_LEN
    if end - TRAILER_LEN < 0:
        return {}
    total, guid = struct.unpack_from("<H16s", image, end - TRAILER_LEN)
    if UUID(bytes_le=guid) != FOOTER_GUID or not TRAILER_LEN <= total <= end:
        return {}
    entries: dict[UUID, bytes] = {}
    table = image[end - total : end - TRAILER_LEN]
    while len(table) >= TRAILER_LEN:
        length, guid = struct.unpack_from("<H16s", table, len(table) - TRAILER_LEN)
        if not TRAILER_LEN <= length <= len(table):
            break  # a length that would run outside the table ends the walk
        entries.setdefault(UUID(bytes_le=guid), table[len(table) - length : len(table) - TRAILER_LEN])
        table = table[: len(table) - length]
    return entries


@dataclass(frozen=True, slots=True)
class OvmfImage:
    """A firmware image and what its footer table says about SEV."""

    data: bytes
    entries: dict[UUID, bytes] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: bytes) -> OvmfImage:
        return cls(data, footer_table(data))

    def _u32s(self, guid: UUID, count: int, what: str) -> tuple[int, ...] | None:
        raw = self.entries.get(guid)
        if raw is None:
            return None
        if len(raw) < 4 * count:
            raise ValueError(f"its {what} entry holds {len(raw)} bytes, not the {4 * count} QEMU reads")
        return struct.unpack_from(f"<{count}I", raw)

    @property
    def sev_es_reset_addr(self) -> int | None:
        """Where SEV-ES APs start (the SEV-ES reset block), or None without one."""
        values = self._u32s(SEV_ES_RESET_BLOCK_GUID, 1, "SEV-ES reset block")
        return None if values is None else values[0]

    @property
    def sev_hash_table_area(self) -> Area | None:
        values = self._u32s(SEV_HASH_TABLE_AREA_GUID, 2, "SEV hashes table area")
        return None if values is None else Area(values[0], values[1])

    @property
    def sev_secret_area(self) -> Area | None:
        values = self._u32s(SEV_SECRET_AREA_GUID, 2, "SEV secret area")
        return None if values is None else Area(values[0], values[1])

    def hash_table_problem(self) -> str | None:
        """Why QEMU would refuse ``kernel-hashes=on`` with this image, or None when it accepts."""
        area = self.sev_hash_table_area
        if area is None:
            return (
                "has no SEV hashes table entry "
                "(QEMU: 'kernel specified but guest firmware has no hashes table GUID')"
            )
        if area.base == 0 or area.size < PADDED_HASH_TABLE_LEN:
            return (
                f"reserves no usable SEV hashes table area (base {area.base:#x}, size {area.size:#x}; "
                f"QEMU needs a base and at least {PADDED_HASH_TABLE_LEN} bytes, as OVMF's AmdSev build has)"
            )
        return None


@dataclass(frozen=True, slots=True)
class KernelHashes:
    """The three SHA-256 digests of a measured direct boot."""

    cmdline: bytes
    initrd: bytes
    kernel: bytes


def cmdline_digest(cmdline: bytes) -> bytes:
    """SHA-256 of the command line as QEMU hashes it: up to its first NUL, plus one NUL
    (``strlen() + 1`` bytes; no ``-append`` is the empty string)."""
    return hashlib.sha256(cmdline.split(b"\0", 1)[0] + b"\0").digest()


def sev_hashes_table(hashes: KernelHashes) -> bytes:
    """The 176 bytes QEMU writes into the hashes table area and measures."""

    def entry(guid: UUID, digest: bytes) -> bytes:
        return guid.bytes_le + struct.pack("<H", HASH_ENTRY_LEN) + digest

    table = (
        SEV_HASH_TABLE_GUID.bytes_le
        + struct.pack("<H", HASH_TABLE_LEN)
        + entry(SEV_CMDLINE_ENTRY_GUID, hashes.cmdline)
        + entry(SEV_INITRD_ENTRY_GUID, hashes.initrd)
        + entry(SEV_KERNEL_ENTRY_GUID, hashes.kernel)
    )
    return table.ljust(PADDED_HASH_TABLE_LEN, b"\0")
