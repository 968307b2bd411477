"""Reading a host: files under a root, and -- on a live host -- the device files and ioctls.

Live reads use the real interfaces:

* CPUID through ``/dev/cpu/0/cpuid`` (the cpuid driver: a 16-byte ``pread`` at offset = leaf);
* MSRs through ``/dev/cpu/0/msr`` (an 8-byte ``pread`` at offset = MSR index);
* ``/dev/kvm``: ``KVM_GET_API_VERSION`` (``_IO(0xAE, 0x00)``) and ``KVM_GET_SUPPORTED_CPUID``
  (``_IOWR(0xAE, 0x05, struct kvm_cpuid2)``, entries of 40 bytes);
* ``/dev/kvm``: ``KVM_GET_DEVICE_ATTR`` (``_IOW(0xAE, 0xE2, struct kvm_device_attr)``, 24 bytes)
  for group KVM_X86_GRP_SEV (1), attribute KVM_X86_SEV_VMSA_FEATURES (0), read into a u64;
* ``/dev/sev``: ``SEV_ISSUE_CMD`` (``_IOWR('S', 0x0, struct sev_issue_cmd)``, 16 bytes packed) with
  ``SEV_PLATFORM_STATUS`` (1) into ``struct sev_user_data_status`` (12 bytes packed).

Every read returns a value or the reason it could not be had (no such file, permission denied,
module not loaded, ...); nothing raises.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import resource
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvmsev.probe import record

KVM_GET_API_VERSION = 0xAE00
KVM_GET_SUPPORTED_CPUID = 0xC008AE05
KVM_GET_DEVICE_ATTR = 0x4018AEE2
KVM_X86_GRP_SEV = 1
KVM_X86_SEV_VMSA_FEATURES = 0
SEV_ISSUE_CMD = 0xC0105300
SEV_PLATFORM_STATUS = 1
KVM_CPUID_ENTRY2 = struct.Struct("<IIIIIII12x")
MAX_CPUID_ENTRIES = 256
#: the largest file read from a host (the biggest real one, a kernel config, is about 300 KiB)
MAX_FILE = 4 << 20


@dataclass(frozen=True, slots=True)
class Read:
    """A value, or None with the reason."""

    value: Any
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.value is not None


def _why(exc: OSError) -> str:
    return f"{exc.filename or 'file'}: {os.strerror(exc.errno or 0)}" if exc.errno else str(exc)


class HostReader:
    """Reads a live host (``root`` = ``/``) or a recorded one (any other root)."""

    def __init__(self, root: str = "/") -> None:
        self.root = Path(root)
        self.live = self.root.resolve() == Path("/")
        self._recorded: dict[str, Any] = {}
        if not self.live:
            probe = self.root / ".kvmsev" / "probe.json"
            if probe.exists() or probe.is_symlink():
                self._recorded = record.load(probe)

    # -- files ----------------------------------------------------------------------------------
    def path(self, rel: str) -> Path:
        return self.root / rel.lstrip("/")

    def _bounded(self, rel: str) -> bytes:
        """The file's bytes, at most :data:`MAX_FILE` of them (a device or an endless file is
        refused, never read to its end); OSError otherwise."""
        with self.path(rel).open("rb") as handle:
            data = handle.read(MAX_FILE + 1)
        if len(data) > MAX_FILE:
            raise OSError(errno.EFBIG, f"larger than {MAX_FILE >> 20} MiB", rel)
        return data

    def raw(self, rel: str) -> bytes | None:
        """A regular file's bytes (bounded), or None: what ``--capture`` copies."""
        try:
            return self._bounded(rel) if self.path(rel).is_file() else None
        except OSError:
            return None

    def text(self, rel: str) -> Read:
        try:
            data = self._bounded(rel)
        except OSError as exc:
            return Read(None, _why(exc) if exc.errno != errno.ENOENT else f"{rel} does not exist")
        if b"\0" in data and not self.live:
            return Read(None, f"{rel} holds a NUL byte (not a text file)")
        return Read(data.decode(errors="replace"))

    def exists(self, rel: str) -> bool:
        return self.path(rel).exists()

    def listdir(self, rel: str) -> list[str]:
        try:
            return sorted(os.listdir(self.path(rel)))
        except OSError:
            return []

    def kernel_config(self, release: str | None) -> Read:
        """``/boot/config-RELEASE`` or ``/proc/config.gz``."""
        if release:
            found = self.text(f"boot/config-{release}")
            if found.ok:
                return found
        try:
            packed = self._bounded("proc/config.gz")
        except OSError:
            return Read(None, "no /boot/config-<release> and no /proc/config.gz")
        inflate = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)  # gzip framing
        try:
            data = inflate.decompress(packed, MAX_FILE + 1)
        except zlib.error as exc:
            return Read(None, f"/proc/config.gz is not gzip data ({exc})")
        if len(data) > MAX_FILE:
            return Read(None, f"/proc/config.gz inflates to over {MAX_FILE >> 20} MiB")
        if not inflate.eof:
            return Read(None, "/proc/config.gz is truncated")
        return Read(data.decode(errors="replace"))

    # -- what is not a file -------------------------------------------------------------------
    def _recorded_value(self, key: str, default_reason: str) -> Read:
        if key not in self._recorded:
            return Read(None, default_reason)
        value = self._recorded[key]
        return Read(
            value, None if value is not None else self._recorded.get(f"{key}_reason") or default_reason
        )

    def uid(self) -> int:
        if self.live:
            return os.geteuid()
        value = self._recorded.get("uid", 0)
        return int(value) if isinstance(value, int) else 0

    def cpuid(self, leaf: int) -> Read:
        """[eax, ebx, ecx, edx] of ``leaf`` (sub-leaf 0) on CPU 0."""
        if not self.live:
            table = self._recorded.get("cpuid") or {}
            regs = table.get(f"{leaf:#x}")
            return Read(regs, None if regs else self._recorded.get("cpuid_reason", "CPUID not recorded"))
        try:
            fd = os.open("/dev/cpu/0/cpuid", os.O_RDONLY)
        except OSError as exc:
            hint = " (modprobe cpuid)" if exc.errno == errno.ENOENT else ""
            return Read(None, _why(exc) + hint)
        try:
            data = os.pread(fd, 16, leaf)
        except OSError as exc:
            return Read(None, _why(exc))
        finally:
            os.close(fd)
        if len(data) != 16:
            return Read(None, "short read from /dev/cpu/0/cpuid")
        return Read(list(struct.unpack("<4I", data)))

    def msr(self, index: int) -> Read:
        if not self.live:
            table = self._recorded.get("msr") or {}
            value = table.get(f"{index:#x}")
            return Read(
                value, None if value is not None else self._recorded.get("msr_reason", "MSR not recorded")
            )
        try:
            fd = os.open("/dev/cpu/0/msr", os.O_RDONLY)
        except OSError as exc:
            hint = (
                " (modprobe msr; needs root)"
                if exc.errno in (errno.ENOENT, errno.EACCES, errno.EPERM)
                else ""
            )
            return Read(None, _why(exc) + hint)
        try:
            data = os.pread(fd, 8, index)
        except OSError as exc:
            return Read(None, _why(exc))
        finally:
            os.close(fd)
        return Read(struct.unpack("<Q", data)[0]) if len(data) == 8 else Read(None, "short read")

    def _kvm_ioctl(self, name: str, request: int, arg: bytearray | None = None) -> Read:
        """One ioctl on /dev/kvm: what it returned (``arg`` is filled in place), or why it
        failed -- the open, or the ioctl's errno."""
        try:
            fd = os.open("/dev/kvm", os.O_RDWR)
        except OSError as exc:
            return Read(None, _why(exc))
        try:
            return Read(fcntl.ioctl(fd, request) if arg is None else fcntl.ioctl(fd, request, arg, True))
        except OSError as exc:
            return Read(None, f"{name}: {os.strerror(exc.errno or 0)}")
        finally:
            os.close(fd)

    def kvm_api_version(self) -> Read:
        if not self.live:
            return self._recorded_value("kvm_api_version", "/dev/kvm not recorded")
        return self._kvm_ioctl("KVM_GET_API_VERSION", KVM_GET_API_VERSION)

    def kvm_supported_cpuid(self, leaf: int = 0x8000001F) -> Read:
        """KVM_GET_SUPPORTED_CPUID's entry for ``leaf`` ([0,0,0,0]-style list), or why not."""
        if not self.live:
            return self._recorded_value("kvm_supported_cpuid_8000001f", "not recorded")
        buf = bytearray(8 + MAX_CPUID_ENTRIES * KVM_CPUID_ENTRY2.size)
        struct.pack_into("<II", buf, 0, MAX_CPUID_ENTRIES, 0)
        done = self._kvm_ioctl("KVM_GET_SUPPORTED_CPUID", KVM_GET_SUPPORTED_CPUID, buf)
        if not done.ok:
            return done
        nent = struct.unpack_from("<I", buf, 0)[0]
        for i in range(nent):
            function, index, _flags, eax, ebx, ecx, edx = KVM_CPUID_ENTRY2.unpack_from(
                buf, 8 + i * KVM_CPUID_ENTRY2.size
            )
            if function == leaf and index == 0:
                return Read([eax, ebx, ecx, edx])
        return Read(None, f"KVM does not list leaf {leaf:#x}")

    def kvm_sev_vmsa_features(self) -> Read:
        """KVM_GET_DEVICE_ATTR(KVM_X86_GRP_SEV, KVM_X86_SEV_VMSA_FEATURES) on /dev/kvm: the
        VMSA features KVM_SEV_INIT2 accepts (6.10 on), or why not (-ENXIO before 6.10 or on a
        kernel without kvm_amd's SEV, -EINVAL before 5.17)."""
        if not self.live:
            return self._recorded_value("kvm_sev_vmsa_features", "not recorded")
        value = ctypes.c_uint64(0)
        attr = bytearray(
            struct.pack("<IIQQ", 0, KVM_X86_GRP_SEV, KVM_X86_SEV_VMSA_FEATURES, ctypes.addressof(value))
        )
        done = self._kvm_ioctl("KVM_GET_DEVICE_ATTR", KVM_GET_DEVICE_ATTR, attr)
        return Read(value.value) if done.ok else done

    def sev_platform_status(self) -> Read:
        if not self.live:
            return self._recorded_value("sev_platform_status", "/dev/sev not recorded")
        try:
            fd = os.open("/dev/sev", os.O_RDONLY)
        except OSError as exc:
            return Read(None, _why(exc))
        status = ctypes.create_string_buffer(12)
        cmd = bytearray(struct.pack("<IQI", SEV_PLATFORM_STATUS, ctypes.addressof(status), 0))
        try:
            fcntl.ioctl(fd, SEV_ISSUE_CMD, cmd, True)
        except OSError as exc:
            error = struct.unpack_from("<I", cmd, 12)[0]
            return Read(
                None, f"SEV_PLATFORM_STATUS: {os.strerror(exc.errno or 0)} (firmware error {error:#x})"
            )
        finally:
            os.close(fd)
        major, minor, state, flags, build, guests = struct.unpack("<BBBIBI", status.raw)
        return Read(
            {
                "api_major": major,
                "api_minor": minor,
                "state": state,
                "flags": flags,
                "build": build,
                "guest_count": guests,
            }
        )

    def dev(self, name: str) -> Read:
        """Presence and permissions of /dev/NAME for the current user."""
        if not self.live:
            table = self._recorded.get("dev") or {}
            entry = table.get(f"/dev/{name}")
            if entry is None:
                return Read(None, f"/dev/{name} does not exist")
            return Read(entry)
        path = Path("/dev") / name
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            return Read(None, _why(exc))
        return Read(
            {
                "mode": f"{mode & 0o7777:04o}",
                "readable": os.access(path, os.R_OK),
                "writable": os.access(path, os.W_OK),
            }
        )

    def rlimit_memlock(self) -> Read:
        if not self.live:
            return self._recorded_value("rlimit_memlock", "not recorded")
        soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
        return Read([soft, hard])

    def kernel_log(self) -> Read:
        """The kernel log: .kvmsev/dmesg.txt when recorded; /dev/kmsg (non-blocking) when live."""
        if not self.live:
            found = self.text(".kvmsev/dmesg.txt")
            return Read(found.value.splitlines() if found.ok else None, found.reason)
        try:
            fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            return Read(None, _why(exc))
        lines: list[str] = []
        try:
            while True:
                try:
                    record = os.read(fd, 8192)
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno == errno.EPIPE:
                        continue
                    break
                if not record:
                    break
                text = record.decode(errors="replace").rstrip("\n")
                lines.append(text.split(";", 1)[1] if ";" in text else text)
        finally:
            os.close(fd)
        return Read(lines)
