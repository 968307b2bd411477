"""``kvmsev measure``: the launch digest and LAUNCH_MEASURE measurement a guest owner should
expect from QEMU launching an SEV or SEV-ES guest from an OVMF image (and, with ``--kernel``, a
measured direct boot)."""

from __future__ import annotations

import argparse
import hashlib
import os
import re
from typing import Any

from kvmsev import files
from kvmsev.cli.commands.output import emit
from kvmsev.cli.parser import add_json
from kvmsev.cli.style import Style
from kvmsev.errors import InputError
from kvmsev.host.ovmf import MAX_BOOT_FILE, MAX_FIRMWARE, KernelHashes, OvmfImage, cmdline_digest
from kvmsev.host.vcpu_reset import QEMU_CPU_MODELS, model_signature
from kvmsev.measure.expected import INITS, LaunchPlan, MeasureInputs, measure
from kvmsev.numbers import parse_int

#: Debian's ``ovmf`` package: one self-contained image (code and variables), what ``-bios`` takes
DEFAULT_OVMF = "/usr/share/ovmf/OVMF.fd"
#: QEMU's ``sev-guest`` default policy (NODBG), and the same with ES for an SEV-ES guest
DEFAULT_POLICY = {"sev": 0x1, "seves": 0x5}
#: the model's firmware version when a profile names none (``kvmsev.host.host``)
DEFAULT_API = "0.24"
MAX_VCPUS = 4096


def add(sub: Any) -> None:
    p = sub.add_parser(
        "measure",
        help="the launch digest and LAUNCH_MEASURE measurement to expect from an SEV / SEV-ES launch",
        description="What QEMU measures when it launches an SEV or SEV-ES guest from an OVMF image: "
        "the image, with --kernel the SEV hashes table (kernel-hashes=on), and for SEV-ES one VMSA "
        "per vCPU; then the HMAC LAUNCH_MEASURE returns for the given policy, firmware version, "
        "TIK and nonce.",
    )
    p.add_argument(
        "--ovmf", default=DEFAULT_OVMF, metavar="PATH", help=f"firmware image (default {DEFAULT_OVMF})"
    )
    p.add_argument("--mode", choices=("sev", "seves"), default="sev", help="SEV or SEV-ES (default sev)")
    p.add_argument("--es", dest="mode", action="store_const", const="seves", help="same as --mode seves")
    p.add_argument("--kernel", metavar="PATH", help="kernel for a measured direct boot (kernel-hashes=on)")
    p.add_argument("--initrd", metavar="PATH", help="initrd of the direct boot (needs --kernel)")
    p.add_argument("--append", metavar="TEXT", help="kernel command line (needs --kernel)")
    p.add_argument(
        "--vcpus", default="1", metavar="N", help="number of vCPUs (SEV-ES: one VMSA each; default 1)"
    )
    cpu = p.add_mutually_exclusive_group()
    cpu.add_argument(
        "--vcpu-type",
        metavar="NAME",
        help=f"QEMU CPU model of the vCPUs (SEV-ES): {', '.join(QEMU_CPU_MODELS)}",
    )
    cpu.add_argument(
        "--vcpu-sig", metavar="N", help="or their CPUID Fn0000_0001 EAX signature, e.g. 0x800f12"
    )
    p.add_argument(
        "--init",
        choices=INITS,
        default=INITS[0],
        help="the init ioctl of the VM (SEV-ES): sev-es-init (KVM_SEV_ES_INIT, default of every released "
        "QEMU) or init2 (KVM_SEV_INIT2, Linux 6.10+ with QEMU legacy-vm-type=off: FPU state in the VMSA)",
    )
    p.add_argument("--policy", metavar="N", help="guest policy (default 0x1 for sev, 0x5 for seves)")
    p.add_argument(
        "--api",
        default=DEFAULT_API,
        metavar="MAJOR.MINOR",
        help=f"the firmware's API version, as query-sev reports it (default {DEFAULT_API})",
    )
    p.add_argument("--build", default="0", metavar="N", help="the firmware's build id (default 0)")
    p.add_argument(
        "--mnonce", metavar="HEX", help="the 16-byte nonce LAUNCH_MEASURE returned (default zeros)"
    )
    p.add_argument(
        "--tik", metavar="HEX", help="the 16-byte TIK of the launch session (default zeros: no session)"
    )
    add_json(p, "docs/json.md")
    p.set_defaults(execute=execute, parser=p)


def _number(option: str, text: str, low: int, high: int) -> int:
    try:
        value = parse_int(text)
    except ValueError as exc:
        raise InputError(option, str(exc)) from None
    if not low <= value <= high:
        raise InputError(option, f"{value} is out of range ({low}..{high})")
    return value


def _key(option: str, text: str | None) -> bytes:
    if text is None:
        return bytes(16)
    cleaned = text.strip().removeprefix("0x")
    try:
        data = bytes.fromhex(cleaned)
    except ValueError:
        raise InputError(option, f"{text[:40]!r} is not hex") from None
    if len(data) != 16:
        raise InputError(option, f"expected 16 bytes (32 hex digits), got {len(data)}")
    return data


def _api(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*([0-9]{1,3})\.([0-9]{1,3})\s*", text, re.ASCII)
    if match is None or int(match[1]) > 255 or int(match[2]) > 255:
        raise InputError("--api", f"expected MAJOR.MINOR, each 0..255 (e.g. 1.55), got {text[:40]!r}")
    return int(match[1]), int(match[2])


def _firmware(path: str) -> OvmfImage:
    try:
        return OvmfImage.parse(files.read_bounded(path, MAX_FIRMWARE))
    except ValueError as exc:
        hint = " (install Debian's ovmf package, or give --ovmf PATH)" if path == DEFAULT_OVMF else ""
        raise InputError("--ovmf", f"{path}: {exc}{hint}") from None


def _digest(option: str, path: str) -> bytes:
    try:
        return files.sha256_bounded(path, MAX_BOOT_FILE)
    except ValueError as exc:
        raise InputError(option, f"{path}: {exc}") from None


def _hashes(args: argparse.Namespace) -> KernelHashes | None:
    if args.kernel is None:
        for option in ("initrd", "append"):
            if getattr(args, option) is not None:
                raise InputError(
                    f"--{option}", "needs --kernel (the hashes table is built only for a direct boot)"
                )
        return None
    # the command line as the bytes it was given (a non-UTF-8 argument round-trips)
    cmdline = os.fsencode(args.append) if args.append is not None else b""
    # no initrd: QEMU hashes an empty blob
    initrd = _digest("--initrd", args.initrd) if args.initrd is not None else hashlib.sha256(b"").digest()
    return KernelHashes(cmdline_digest(cmdline), initrd, _digest("--kernel", args.kernel))


def _vcpu_sig(args: argparse.Namespace) -> int | None:
    if args.vcpu_sig is not None:
        return _number("--vcpu-sig", args.vcpu_sig, 0, 0xFFFF_FFFF)
    if args.vcpu_type is None:
        return None
    signature = model_signature(args.vcpu_type)
    if signature is None:
        raise InputError(
            "--vcpu-type",
            f"unknown CPU model {args.vcpu_type[:40]!r} "
            f"(known: {', '.join(QEMU_CPU_MODELS)}; or --vcpu-sig N)",
        )
    return signature


def execute(args: argparse.Namespace, style: Style) -> int:
    es = args.mode == "seves"
    vcpus = _number("--vcpus", args.vcpus, 1, MAX_VCPUS)
    policy = (
        _number("--policy", args.policy, 0, 0xFFFF_FFFF)
        if args.policy is not None
        else DEFAULT_POLICY[args.mode]
    )
    major, minor = _api(args.api)
    build = _number("--build", args.build, 0, 255)
    tik, mnonce = _key("--tik", args.tik), _key("--mnonce", args.mnonce)
    vcpu_sig = _vcpu_sig(args)
    plan = LaunchPlan(
        firmware=_firmware(args.ovmf),
        firmware_name=os.path.basename(args.ovmf) or args.ovmf,
        es=es,
        vcpus=vcpus,
        vcpu_sig=vcpu_sig,
        vcpu_type=args.vcpu_type,
        hashes=_hashes(args),
        init2=args.init == "init2",
    )
    report = measure(plan, MeasureInputs(policy, (major, minor, build), tik, mnonce))
    emit(report, args.json, render(report, style))
    return 0


def _area(area: dict[str, int] | None) -> str:
    return "none" if area is None else f"base {area['base']:#x}, size {area['size']:#x}"


def _updates(report: dict[str, Any]) -> list[str]:
    """One line per update, consecutive AP VMSAs (which are identical) folded into one."""
    lines: list[str] = []
    reset = report["firmware"]["sev_es_reset_addr"]
    updates = report["launch_updates"]
    i = 0
    while i < len(updates):
        u = updates[i]
        if u["what"] == "vmsa" and u["vcpu"] > 0:
            last = i
            while last + 1 < len(updates) and updates[last + 1]["what"] == "vmsa":
                last += 1
            first_vcpu, last_vcpu = u["vcpu"], updates[last]["vcpu"]
            who = f"vCPU {first_vcpu}" if first_vcpu == last_vcpu else f"vCPUs {first_vcpu}-{last_vcpu}"
            what = f"{who} (AP, starts at the SEV-ES reset block {reset:#x})"
            count = last - i + 1
            i = last + 1
        else:
            what = {
                "firmware": f"firmware {report['firmware']['file']}",
                "sev_hashes_table": "SEV hashes table (cmdline, initrd, kernel)",
                "vmsa": "vCPU 0 (BSP, starts at 0xfffffff0)",
            }[u["what"]]
            count = 1
            i += 1
        times = f" x{count}" if count > 1 else ""
        lines.append(f"  {u['command']:<19} {u['len']:>9}{times:<6} {what}")
    return lines


def render(report: dict[str, Any], style: Style) -> str:
    fw = report["firmware"]
    es = report["mode"] == "seves"
    reset = fw["sev_es_reset_addr"]
    out = [
        style(f"{fw['file']}: {fw['size']} bytes, sha256 {fw['sha256']}", "bold"),
        f"  SEV-ES reset block {'none' if reset is None else f'{reset:#x}'}; "
        f"SEV hashes table area {_area(fw['sev_hash_table_area'])}",
    ]
    launch = ["SEV"]
    if es:
        count = report["vcpus"]
        model = f"{report['vcpu_type']} " if report["vcpu_type"] else ""
        init = "KVM_SEV_INIT2" if report["init"] == "init2" else "KVM_SEV_ES_INIT"
        launch = [
            f"SEV-ES, {count} vCPU{'s' if count > 1 else ''} {model}(signature {report['vcpu_sig']:#x}), "
            f"VMSAs as {init} leaves them"
        ]
    if report["kernel_hashes"] is not None:
        launch.append("direct kernel boot, kernel-hashes=on")
    out += ["", "launch: " + "\n        ".join(launch), *_updates(report), ""]
    api = report["api"]
    session = "zero (no session)" if report["tik_zero"] else "given"
    out += [
        f"launch digest  {style(report['launch_digest'], 'bold')}",
        f"measurement    {style(report['measurement'], 'bold')}",
        f"  policy {report['policy']:#x}, API {api['major']}.{api['minor']} build {api['build']}, "
        f"TIK {session}, mnonce {report['mnonce']}",
        f"  LAUNCH_MEASURE blob (query-sev-launch-measure): {report['launch_measure_blob']}",
    ]
    return "\n".join(out)
