"""Hypothesis strategies for every input a user can hand ``kvmsev``.

Four families, one strategy each:

* :func:`scenario_files` -- scenario documents shaped like the schema (every op of
  :data:`kvmsev.scenario.schema.OPS`, every :class:`~kvmsev.scenario.schema.HostModel` field, the
  ``hosts:`` variant), their values a mix of valid ones (so that runs get past validation and into
  the model), boundary values and wrong types; written as YAML or JSON.
* :func:`malformed_scenario_files` -- files that are not scenarios at all: random or non-UTF-8
  bytes, nesting hundreds of levels deep, bounded alias bombs, top-level scalars, an ``op`` that
  is a list, truncated and bit-flipped documents.
* :func:`command_lines` -- argv for every subcommand from the real option vocabulary, with valid,
  boundary and garbage values, unknown options and paths to files, directories, endless files,
  missing and unwritable places. ``check`` always gets a small state budget so it stays cheap.
* :func:`recorded_hosts` -- a copy of a fixture under ``tests/fixtures/hosts/`` with files
  truncated, replaced, removed, turned into directories or into symlinks to ``/dev/zero``.

Each draws a :class:`Case`: an argv and the files it refers to. :func:`materialize` writes a case
into a scratch directory in which the command then runs, so every path in an argv is relative
and a failing case replays in any directory.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gzip
import json
import os
import shlex
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from hypothesis import strategies as st

from kvmsev.check import invariants as invariants_mod
from kvmsev.cli.parser import build_parser
from kvmsev.firmware.status import Command, Status
from kvmsev.hw import profiles as profiles_mod
from kvmsev.hw.bios import OPTIONS as BIOS_OPTIONS
from kvmsev.kernel.kconfig import SYMBOLS
from kvmsev.kvm.kernels import PRESETS
from kvmsev.kvm.patches import PATCHES
from kvmsev.scenario.schema import MAX_DATA, OPS, STEP_MODELS, HostModel

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "hosts"
#: the recorded hosts the corruptions start from
FIXTURES: tuple[str, ...] = tuple(sorted(p.name for p in FIXTURES_DIR.iterdir() if p.is_dir()))
#: the recorded host command lines point --root at (a plain SEV host)
GOOD_HOST = "milan-edx1" if "milan-edx1" in FIXTURES else FIXTURES[0]
PROFILES: tuple[str, ...] = tuple(profiles_mod.builtin_names())
PATCH_NAMES: tuple[str, ...] = tuple(p.name for p in PATCHES)
#: per kernel preset: the patches it lacks (that --apply takes) and those it has (--revert)
APPLICABLE: dict[str, tuple[str, ...]] = {
    k: tuple(p.name for p in PATCHES if p.field is not None and getattr(b, p.field) != p.applied)
    for k, b in PRESETS.items()
}
REVERTIBLE: dict[str, tuple[str, ...]] = {
    k: tuple(p.name for p in PATCHES if p.field is not None and getattr(b, p.field) == p.applied)
    for k, b in PRESETS.items()
}

Family = Literal["scenario", "malformed-scenario", "command-line", "recorded-host"]
FAMILIES: tuple[Family, ...] = ("scenario", "malformed-scenario", "command-line", "recorded-host")

# -- the scratch directory every case runs in --------------------------------------------------------
VALID_YAML = "valid.yaml"
VALID_JSON = "valid.json"
INVALID_YAML = "invalid.yaml"
EMPTY_YAML = "empty.yaml"
BINARY_YAML = "binary.yaml"
#: a file name that is not UTF-8 (b"\xff.yaml"), as Python spells it in argv
UNDECODABLE_YAML = "\udcff.yaml"
PROFILE_JSON = "profile.json"
BAD_PROFILE_JSON = "bad-profile.json"
#: a profile file a command-line case generates
FUZZ_PROFILE_JSON = "fuzz-profile.json"
PLAIN_FILE = "file.txt"
#: a path below a regular file: no one can create it, not even root
UNDER_FILE = "file.txt/sub"
READONLY_DIR = "readonly"
OUT_DIR = "out"
EMPTY_DIR = "dir"
#: a known-good recorded host
HOST_DIR = "host"
#: where a recorded-host case builds its corrupted host
ROOT_DIR = "root"
ENDLESS = ("endless", "endless.yaml", "endless.json")
SYMLINK_LOOP = "loop.yaml"
DANGLING = "dangling.yaml"
#: a directory nobody can create anything in on Linux, whatever the permissions
PROC_CHILD = "/proc/kvmsev-fuzz/out"

VALID_SCENARIO: dict[str, Any] = {
    "host": {"profile": "lab", "kernel": "v5.13"},
    "steps": [
        {"op": "vm_create", "vm": "a"},
        {"op": "sev_init", "vm": "a"},
        {"op": "launch_start", "vm": "a", "policy": 0},
        {"op": "launch_update_data", "vm": "a", "data": {"pattern": "5a", "len": 4096}},
        {"op": "launch_measure", "vm": "a"},
        {"op": "launch_finish", "vm": "a"},
        {"op": "vcpu_create", "vm": "a"},
        {"op": "vcpu_run", "vm": "a", "vcpu": 0, "cpu": 0},
        {"op": "vm_destroy", "vm": "a"},
    ],
}


def remove(path: Path) -> None:
    """Remove a file, symlink or directory tree, making directories writable first (a case may
    have taken permissions away)."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.is_dir():
        for dirpath, dirnames, _ in os.walk(path):
            os.chmod(dirpath, 0o700)
            for name in dirnames:
                child = os.path.join(dirpath, name)
                if not os.path.islink(child):
                    os.chmod(child, 0o700)
        shutil.rmtree(path)


def prepare_workdir(workdir: Path) -> None:
    """(Re)create ``workdir`` with the files and directories command lines point at.

    It is rebuilt for every case because commands write into it (``--export-root``, ``--out``,
    ``--capture``, all of which may also be ``""``, i.e. the working directory).
    """
    remove(workdir)
    workdir.mkdir(parents=True)
    scenario = yaml.safe_dump(VALID_SCENARIO, sort_keys=False).encode()
    (workdir / VALID_YAML).write_bytes(scenario)
    (workdir / VALID_JSON).write_text(json.dumps(VALID_SCENARIO))
    (workdir / INVALID_YAML).write_text("steps: [{op: nope}]\n")
    (workdir / EMPTY_YAML).write_bytes(b"")
    (workdir / BINARY_YAML).write_bytes(b"\xff\xfe\x00host: \x80\x81")
    with contextlib.suppress(OSError, UnicodeEncodeError):  # a file system that insists on UTF-8 names
        (workdir / UNDECODABLE_YAML).write_bytes(scenario)
    (workdir / PROFILE_JSON).write_text(_builtin_profile_text("lab"))
    (workdir / BAD_PROFILE_JSON).write_text('{"name": 1, "threads": "many"}')
    (workdir / PLAIN_FILE).write_text("not a directory\n")
    for name in (EMPTY_DIR, OUT_DIR, "dir.yaml", "dir.json"):
        (workdir / name).mkdir()
    (workdir / READONLY_DIR).mkdir(mode=0o555)
    for name in ENDLESS:
        (workdir / name).symlink_to("/dev/zero")
    (workdir / SYMLINK_LOOP).symlink_to(SYMLINK_LOOP)
    (workdir / DANGLING).symlink_to("missing-target")
    shutil.copytree(FIXTURES_DIR / GOOD_HOST, workdir / HOST_DIR)


def _builtin_profile_text(name: str) -> str:
    return resources.files("kvmsev.hw").joinpath("profiles", f"{name}.json").read_text()


# -- cases ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Edit:
    """One change to a recorded host's tree (paths relative to its root)."""

    action: Literal["write", "truncate", "remove", "mkdir", "symlink", "chmod", "clear"]
    path: str = ""
    data: bytes = b""
    #: bytes kept by ``truncate``; the mode of ``chmod``
    size: int = 0
    #: where a ``symlink`` points
    target: str = ""

    def describe(self) -> str:
        if self.action == "write":
            return f"write {self.path}: {_show(self.data, 600)}"
        if self.action == "truncate":
            return f"truncate {self.path} to {self.size} bytes"
        if self.action == "symlink":
            return f"symlink {self.path} -> {self.target}"
        if self.action == "chmod":
            return f"chmod {self.size:o} {self.path}"
        if self.action == "clear":
            return "remove everything"
        return f"{self.action} {self.path}"


@dataclass(frozen=True, slots=True)
class Case:
    """One input: ``kvmsev ARGV`` run in a scratch directory holding ``files`` and, when ``host``
    is not None, a recorded host at :data:`ROOT_DIR` (a copy of that fixture, or an empty
    directory for ``""``) with ``edits`` applied."""

    family: Family
    argv: tuple[str, ...]
    files: tuple[tuple[str, bytes], ...] = ()
    host: str | None = None
    edits: tuple[Edit, ...] = ()

    def describe(self) -> str:
        """What to type to reproduce it: the command and every file that differs from the
        scratch directory's usual content (ASCII-safe, long contents cut)."""
        lines = [f"$ kvmsev {shlex.join(self.argv)}"]
        for name, data in self.files:
            lines.append(f"--- {name} ({len(data)} bytes) ---")
            lines.append(_show(data, 4000))
        if self.host is not None:
            origin = f"a copy of tests/fixtures/hosts/{self.host}" if self.host else "an empty directory"
            lines.append(f"--- {ROOT_DIR}/: {origin}, then:")
            lines.extend(f"  {e.describe()}" for e in self.edits)
        return "\n".join(lines).encode("utf-8", "backslashreplace").decode("utf-8")

    def size(self) -> int:
        """A measure to keep the smallest of several inputs that fail the same way."""
        return (
            sum(len(a) + 1 for a in self.argv)
            + sum(len(n) + len(d) for n, d in self.files)
            + sum(len(e.path) + len(e.data) + len(e.target) + 4 for e in self.edits)
        )


def _show(data: bytes, limit: int) -> str:
    """File content for a report: text when it is printable UTF-8, else a bytes literal."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c in "\n\t" for c in text):
        return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
    shown = repr(data[:limit])
    return shown if len(data) <= limit else f"{shown}... ({len(data)} bytes)"


#: per scratch directory: the state of its furniture after it was built, and what the last case added
_BUILT: dict[Path, tuple[dict[str, tuple[int, int, int]], tuple[str, ...]]] = {}


def _furniture_state(workdir: Path, skip: tuple[str, ...]) -> dict[str, tuple[int, int, int]]:
    """Every entry below ``workdir`` (but the top-level ``skip``) with its mtime, size and mode."""
    state: dict[str, tuple[int, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(workdir):
        if dirpath == str(workdir):
            dirnames[:] = [d for d in dirnames if d not in skip]
            filenames = [f for f in filenames if f not in skip]
        for name in (*dirnames, *filenames):
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            state[path] = (info.st_mtime_ns, info.st_size, info.st_mode)
    return state


def materialize(case: Case, workdir: Path, *, reuse: bool = True) -> None:
    """Write ``case`` into ``workdir``, on top of the furniture of :func:`prepare_workdir`.

    With ``reuse``, the furniture is only rebuilt when the previous command changed it (a
    command may write anywhere in the directory): checking is much cheaper than rebuilding for
    every input. Without, ``workdir`` is built from scratch and not remembered.
    """
    built = _BUILT.pop(workdir, None) if reuse else None
    if built is not None:
        state, added = built
        for name in added:
            remove(workdir / name)
        if _furniture_state(workdir, added) != state:
            built = None
    if built is None:
        prepare_workdir(workdir)
        state = _furniture_state(workdir, ())
    added = tuple(name for name, _ in case.files) + ((ROOT_DIR,) if case.host is not None else ())
    for name, data in case.files:
        target = workdir / name
        remove(target)
        target.write_bytes(data)
    if case.host is not None:
        root = workdir / ROOT_DIR
        if case.host:
            shutil.copytree(FIXTURES_DIR / case.host, root, symlinks=True)
        else:
            root.mkdir()
        for edit in case.edits:
            _apply(root, edit)
    if reuse:
        _BUILT[workdir] = (state, added)


def _make_parent(root: Path, path: Path) -> None:
    """Make ``path``'s directory exist, replacing whatever non-directory is in the way."""
    current = root
    for part in path.relative_to(root).parts[:-1]:
        current = current / part
        if current.is_symlink() or (current.exists() and not current.is_dir()):
            current.unlink()
        if not current.exists():
            current.mkdir()
        else:
            os.chmod(current, 0o700)


def _apply(root: Path, edit: Edit) -> None:
    if edit.action == "clear":
        for child in root.iterdir():
            remove(child)
        return
    path = root / edit.path
    if edit.action == "truncate":
        if path.is_file() and not path.is_symlink():
            with path.open("r+b") as f:
                f.truncate(min(edit.size, f.seek(0, os.SEEK_END)))
        return
    if edit.action == "chmod":
        if path.exists() and not path.is_symlink():
            os.chmod(path, edit.size)
        return
    _make_parent(root, path)
    remove(path)
    if edit.action == "write":
        path.write_bytes(edit.data)
    elif edit.action == "mkdir":
        path.mkdir()
    elif edit.action == "symlink":
        os.symlink(edit.target or path.name, path)


# -- values -----------------------------------------------------------------------------------------
def _words(text: str, *more: str) -> list[str]:
    """A table of values: those in ``text`` (separated by spaces, so that a long table takes a
    few lines), then ``more``."""
    return [*text.split(), *more]


def _w(*options: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of ``options`` with the given weights; shrinking moves toward the first.

    (``st.one_of`` flattens nested ``one_of``s into one list of equally likely branches, so
    repeating a branch would not weigh it reliably.)
    """
    total = sum(weight for weight, _ in options)

    def option(n: int) -> st.SearchStrategy[Any]:
        for weight, strategy in options:
            if n < weight:
                return strategy
            n -= weight
        raise AssertionError(n)

    return st.integers(0, total - 1).flatmap(option)


@dataclass(frozen=True, slots=True)
class Raw:
    """A value written verbatim into the file, for what a serializer cannot produce: integers
    beyond Python's str conversion limit, YAML 1.1 implicit types, tags, aliases."""

    yaml: str
    json: str


def _huge(digits: int, sign: str = "") -> Raw:
    text = sign + "9" * digits
    return Raw(text, text)


#: integers at the edges of what the kernel's structures hold, and just past them
BOUNDARY_INTS: tuple[int, ...] = (
    *(0, 1, -1, 2, 3, 15, 16, 48, 0xD0, 255, 256, 4095, 4096, 4097, 65536, 2**31 - 1, 2**31, 2**32 - 1),
    *(2**32, 2**40, 2**47, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**64), MAX_DATA, MAX_DATA + 1),
    10**100,
)
HUGE_INTS = st.sampled_from([_huge(4300), _huge(4301), _huge(5000, "-"), _huge(20000)])
#: integers spelled as strings, which the schema reads in any base Python reads
INT_TEXTS = st.sampled_from(
    _words(
        "0x10 0X1F 0b101 0o17 017 1_000 -0x1 0x 1e3 nan 4294967296 18446744073709551616 -1 \u0663 \u00b2",
        *(" 7 ", "", "0x" + "f" * 100, "9" * 5000),
    )
)
#: YAML scalars whose type depends on YAML 1.1's implicit resolution, tags and aliases
YAML_ODDITIES = st.sampled_from(
    [
        *(Raw("yes", "true"), Raw("off", "false"), Raw("0x1F", "31"), Raw("0o17", "15"), Raw("017", "17")),
        *(Raw("1_000", "1000"), Raw("1:20", '"1:20"'), Raw("2001-12-14", '"2001-12-14"')),
        Raw("2001-12-14t21:59:43.10-05:00", '"2001-12-14t21:59:43.10-05:00"'),
        *(Raw(".inf", "Infinity"), Raw("-.inf", "-Infinity"), Raw(".nan", "NaN"), Raw("~", "null")),
        *(Raw("!!binary aGVsbG8=", '"aGVsbG8="'), Raw("!!set {a: null, b: null}", '{"a": null}')),
        *(Raw("!!omap [a: 1, b: 2]", '[{"a": 1}]'), Raw("!!str 5", '"5"'), Raw("!!int '7'", "7")),
        *(Raw("!!float 1e400", "1e400"), Raw("!!null ''", "null"), Raw("!!python/name:os.system", '"x"')),
        *(Raw("!custom x", "-0"), Raw("*undefined", "1E+99999"), Raw("'unterminated", '"unterminated')),
        *(Raw("[1, 2", "[1, 2"), Raw('"\\ud800"', '"\\ud800"')),
    ]
)
WRONG_TYPES: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(),
    st.just([]),
    st.just({}),
    st.text(max_size=8),
    st.lists(st.integers(-5, 5), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(-5, 5), max_size=2),
    YAML_ODDITIES,
)
ODD_TEXTS = st.sampled_from(
    ["", " ", "-", "--", "\udcff", "\u00e9", "a\x00b", "\x85", "\u2028", "x" * 5000, "null", "~", "0", "-1"]
)


def _nested(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A value wrapped in the nesting a schema does not expect."""
    return st.one_of(
        values.map(lambda v: [v]),
        values.map(lambda v: {"value": v}),
        values.map(lambda v: [[v]]),
        values.map(lambda v: {"a": {"b": [v]}}),
    )


def _odd_int() -> st.SearchStrategy[Any]:
    return _w((4, st.sampled_from(BOUNDARY_INTS)), (2, INT_TEXTS), (1, HUGE_INTS), (2, WRONG_TYPES))


def _field(valid: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> tuple[Any, Any]:
    """A field's valid values, and its odd ones: the given ones, wrong types and wrong nesting."""
    return valid, _w((4, odd), (2, WRONG_TYPES), (1, _nested(valid)))


def _ints(*values: int) -> st.SearchStrategy[Any]:
    return st.sampled_from(values)


VM_NAMES = _w((6, st.just("a")), (3, st.just("b")), (1, st.just("c")))
HOST_NAMES = st.sampled_from(["src", "dst"])
NAME_ODD = st.sampled_from(
    ["", "A" * 64, "A" * 65, "a b", "a/b", "..", "-", "\udcff", "\u00e9", "a\x00", "0"]
)
ADDRESSES = _ints(0x7F0000000000, 0x7F0000100000, 0x7F0000200000, 0x7F0000001000, 0x7F0000000010)
ADDRESS_ODD = _ints(0, 1, 0xFFF, 0x1000, 2**47 - 4096, 2**47, 2**63, 2**64 - 4096, 2**64 - 1, 2**64, -1)
LENGTHS = _ints(0, 1, 15, 16, 32, 48, 0xD0, 4096, 8192, 0xFFFFF000)
LENGTH_ODD = _ints(4097, 2**31, 2**32 - 1, 2**32, 2**40, MAX_DATA, MAX_DATA + 1, -1)
U32 = _ints(0, 1, 2, 3, 5, 7, 0xFF, 0xFFFFFFFF)
HEX = st.binary(max_size=48).map(bytes.hex)
HEX_ODD = st.sampled_from(["0", "zz", "0x", "0x0", "00 11", "0X00", "g" * 32, "\u0663\u0663", "0" * 4097])
DATA = _w(
    (4, HEX),
    (
        2,
        st.builds(
            lambda p, n: {"pattern": p, "len": n}, st.binary(min_size=1, max_size=8).map(bytes.hex), LENGTHS
        ),
    ),
    (1, st.builds(lambda n: {"zero": n}, LENGTHS)),
)
DATA_ODD = _w(
    (3, HEX_ODD),
    (
        2,
        st.sampled_from(
            [
                {"zero": MAX_DATA},
                {"pattern": "00", "len": MAX_DATA + 1},
                {"zero": 2**40},
                {"zero": -1},
                {"pattern": "", "len": 1},
                {"pattern": "0", "len": 1},
                {"zero": 1, "pattern": "00", "len": 1},
                {"len": 5},
                {"pattern": "00"},
                {},
                {"zero": 1, "extra": 2},
            ]
        ),
    ),
    (1, HUGE_INTS.map(lambda h: {"zero": h})),
)
KEY16 = st.binary(min_size=16, max_size=16).map(bytes.hex)
KEY16_ODD = st.one_of(
    st.binary(min_size=15, max_size=17).filter(lambda b: len(b) != 16).map(bytes.hex),
    st.sampled_from(["0x" + "00" * 16, "zz" * 16, "", "00" * 16 + " "]),
)
MAC32 = st.binary(min_size=32, max_size=32).map(bytes.hex)
CGROUPS = st.sampled_from(["/", "/tenant", "/tenant/a", "/b"])
CGROUP_ODD = st.sampled_from(["", "tenant", "//", "/a/../b", "/" + "a" * 300, "/a b", "/\udcff", "/a/"])
SESSION = st.fixed_dictionaries(
    {},
    optional={
        "tek": KEY16,
        "tik": KEY16,
        "policy": U32,
        "tamper": st.sampled_from(["wrap_mac", "policy_mac", "wrap_tk", "certificate", "session_len"]),
    },
)
SESSION_ODD = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "tek": _w((1, KEY16), (1, KEY16_ODD)),
            "tik": _w((1, KEY16), (1, KEY16_ODD)),
            "policy": _odd_int(),
            "tamper": st.sampled_from(["x", "", "WRAP_MAC"]),
            "extra": WRONG_TYPES,
        },
    ),
    st.just("session"),
)
FW_COMMANDS = st.sampled_from([c.name for c in Command])
FW_STATUSES = st.sampled_from([s.name for s in Status])
FAIL_SITES = st.sampled_from(
    ["sev_asid_bitmap", "sev_reclaim_asid_bitmap", "sev_vmcbs", "sev_vmcbs[0]", "sev_vmcbs[1]"]
)
FAIL_SITE_ODD = st.sampled_from(
    _words(
        "sev_vmcbs[9999] sev_vmcbs[-1] sev_vmcbs[] sev_vmcbs[\u00b2] sev_vmcbs[\u0661] sev_vmcbs[0x1]"
        " sev_vmcbs[1 sev_asid_bitmap[0] x",
        *("", "sev_vmcbs[" + "9" * 5000 + "]"),
    )
)

#: step fields by name: (valid values, odd values)
STEP_FIELDS: dict[str, tuple[Any, Any]] = {
    "vm": _field(VM_NAMES, NAME_ODD),
    "source": _field(st.one_of(VM_NAMES, HOST_NAMES), NAME_ODD),
    "stream": _field(VM_NAMES, NAME_ODD),
    "to": _field(HOST_NAMES, NAME_ODD),
    "host": _field(HOST_NAMES, NAME_ODD),
    "cgroup": _field(CGROUPS, CGROUP_ODD),
    "policy": _field(_ints(0, 1, 2, 4, 5, 7, 0x8, 0x10, 0x20), _odd_int()),
    "handle": _field(_ints(0, 1, 2), _odd_int()),
    "sev_fd": _field(_ints(0, 3, 4), _odd_int()),
    "session": _field(SESSION, SESSION_ODD),
    "data": _field(DATA, DATA_ODD),
    "secret": _field(DATA, DATA_ODD),
    "vmsa": _field(DATA, DATA_ODD),
    "uaddr": _field(ADDRESSES, ADDRESS_ODD),
    "guest_uaddr": _field(ADDRESSES, ADDRESS_ODD),
    "src_uaddr": _field(ADDRESSES, ADDRESS_ODD),
    "dst_uaddr": _field(ADDRESSES, ADDRESS_ODD),
    "len": _field(LENGTHS, LENGTH_ODD),
    "size": _field(_ints(4096, 8192, 1 << 20), _w((1, LENGTH_ODD), (1, _odd_int()))),
    "session_len": _field(_ints(0, 1, 128, 256), _odd_int()),
    "iv": _field(KEY16, KEY16_ODD),
    "tek": _field(KEY16, KEY16_ODD),
    "tik": _field(KEY16, KEY16_ODD),
    "mnonce": _field(KEY16, KEY16_ODD),
    "mac": _field(MAC32, KEY16_ODD),
    "flags": _field(_ints(0, 1), _odd_int()),
    "id": _field(st.integers(0, 30), _odd_int()),
    "data_fault": _field(st.booleans(), st.sampled_from(["yes", 2, "true"])),
    "vcpu": _field(_ints(0, 1), _ints(2, 1023, 1024, -1, 2**64)),
    "cpu": _field(_ints(0, 1), _ints(2, 3, 127, 8191, 8192, -1, 2**64)),
    "resource": _field(st.sampled_from(["sev", "sev_es"]), st.sampled_from(["SEV", "", "es", "sev "])),
    "max": _field(
        st.one_of(_ints(0, 1, 2), st.just("max")), st.one_of(_odd_int(), st.sampled_from(["MAX", "max "]))
    ),
    "fail_alloc": _field(FAIL_SITES, FAIL_SITE_ODD),
    "cmd": _field(FW_COMMANDS, st.sampled_from(["df_flush", "", "0x0a", "10", "x" * 65, "mro", "__class__"])),
    "status": _field(FW_STATUSES, st.sampled_from(["0x14", "20", "", "unsafe", "x" * 65, "_member_map_"])),
    "packet": _field(_ints(0, 1), _ints(2, 99, -1, 2**64)),
    "tamper": _field(st.sampled_from(["header", "trans"]), st.sampled_from(["", "x", "HEADER"])),
}
GENERIC: tuple[Any, Any] = _field(st.integers(0, 3), _odd_int())


def _strings(valid: st.SearchStrategy[str], odd: st.SearchStrategy[Any]) -> tuple[Any, Any]:
    """A repeatable option in a scenario: a list of strings (or one string)."""
    return (
        _w((4, st.lists(valid, max_size=3)), (1, valid)),
        _w((3, st.lists(_w((2, valid), (1, odd)), min_size=1, max_size=4)), (1, odd), (1, WRONG_TYPES)),
    )


PARAM_NAMES = st.sampled_from(["sev", "sev_es", "npt", "nested"])
PARAM_VALUES = st.sampled_from(["0", "1", "y", "n", "Y", "N", "yes", "no", "on", "off", "true"])
PARAM_VALUE_ODD = st.sampled_from(
    ["2", "-1", "", "0x1", "99999999999999999999", "9" * 5000, "1 ", "\udcff", "y\x00"]
)
PARAMS = st.builds(lambda n, v: f"kvm_amd.{n}={v}", PARAM_NAMES, PARAM_VALUES)
PARAM_ODD = st.one_of(
    st.builds(lambda n, v: f"kvm_amd.{n}={v}", PARAM_NAMES, PARAM_VALUE_ODD),
    st.sampled_from(
        _words(
            "kvm_amd.avic=1 kvm_amd.sev-es=1 kvm.sev=1 sev=1 kvm_amd.sev kvm_amd.=1 = kvm_amd.sev=1=2"
            " kvm_amd..sev=1 kvm-amd.sev=1",
            "",
        )
    ),
)
CMDLINE_WORDS = st.one_of(
    PARAMS,
    st.sampled_from(
        _words(
            'mem_encrypt=on mem_encrypt=off mem_encrypt=maybe mem_encrypt kvm_amd.sev="1" -- quiet',
            *('"kvm_amd.sev=1 kvm_amd.sev_es=1"', "BOOT_IMAGE=/vmlinuz"),
        )
    ),
)
CMDLINES = st.builds(
    lambda words, sep: sep.join(words),
    st.lists(CMDLINE_WORDS, max_size=5),
    st.sampled_from([" ", "  ", "\t", "\n"]),
)
CMDLINE_ODD = st.one_of(
    ODD_TEXTS,
    st.builds(
        lambda words: " ".join(words), st.lists(st.one_of(CMDLINE_WORDS, PARAM_ODD), min_size=1, max_size=5)
    ),
)
CONFIGS = st.builds(lambda s, v: f"{s}={v}", st.sampled_from(sorted(SYMBOLS)), st.sampled_from(["y", "n"]))
CONFIG_ODD = st.one_of(
    st.builds(
        lambda s, v: f"{s}={v}", st.sampled_from(sorted(SYMBOLS)), st.sampled_from(["m", "", "Y", "yes", "1"])
    ),
    st.sampled_from(
        ["CONFIG_NOPE=y", "CONFIG_KVM_AMD_SEV", "=y", "", "KVM_AMD_SEV=y", "# CONFIG_KVM_AMD_SEV is not set"]
    ),
)
BIOS_VALUES = st.sampled_from(
    [
        "smee=on",
        "smee=off",
        "sev_es_asid_space_limit=3",
        "sev_es_asid_space_limit=1",
        "sev_asid_count=4",
        "smt=off",
    ]
)
BIOS_ODD = st.one_of(
    st.builds(
        lambda k, v: f"{k}={v}",
        st.sampled_from(BIOS_OPTIONS),
        st.sampled_from(_words("0 1 2 5 6 100 253 509 1006 1007 -1 4294967296 x 0x10 ON", "", "9" * 5000)),
    ),
    st.sampled_from(["turbo=on", "smee", "=on", "smee=", "", "smee=on=off", " smee = on "]),
)
CPUID_VALID = st.one_of(
    st.tuples(*[st.integers(0, 2**32 - 1)] * 4).map(lambda r: ":".join(f"{v:#x}" for v in r)),
    st.tuples(*[st.integers(0, 2**32 - 1)] * 4).map(lambda r: "-".join(f"{v:08X}" for v in r)),
    st.sampled_from(["0x0001FC3F:0x00004173:0x1FD:1", "0000000F-0000016F-0000000F-00000001", "11:367:4:3"]),
)
CPUID_ODD = st.sampled_from(
    _words(
        "::: 1:2:3 1:2:3:4:5 0x100000000:0:0:0 -1:0:0:0 0x:0:0:0 \u00b2:0:0:0 \u0661:0:0:0 1-2-3-4"
        " 0000000G-00000000-00000000-00000000 0b1:0:0:0",
        *("", "x" * 200, " 1 : 2 : 3 : 4 ", "9" * 5000 + ":0:0:0"),
    )
)
PROFILE_VALID = _w((6, st.just("lab")), (3, st.sampled_from(PROFILES)), (1, st.just(PROFILE_JSON)))
PROFILE_ODD = st.sampled_from(
    _words(
        "missing.json dir.json nope LAB lab.JSON ../lab .json / \udcff.json",
        *(BAD_PROFILE_JSON, "", "a\x00b", "x" * 5000, "lab "),
    )
)

#: host fields by name: (valid values, odd values)
HOST_FIELDS: dict[str, tuple[Any, Any]] = {
    "profile": _field(PROFILE_VALID, PROFILE_ODD),
    "cpuid": _field(CPUID_VALID, CPUID_ODD),
    "kernel": _field(
        st.sampled_from(["v5.12", "v5.13"]), st.sampled_from(["", "v5.14", "5.13", "V5.13", "v5.13 "])
    ),
    "apply": _strings(st.sampled_from(PATCH_NAMES), st.sampled_from(["", "nope", "ZERO-VMCB-ARRAY"])),
    "revert": _strings(st.sampled_from(PATCH_NAMES), st.sampled_from(["", "nope", "zero-vmcb-array "])),
    "params": _strings(PARAMS, PARAM_ODD),
    "cmdline": _field(CMDLINES, CMDLINE_ODD),
    "config": _strings(CONFIGS, CONFIG_ODD),
    "bios": _strings(BIOS_VALUES, BIOS_ODD),
    "cpus": _field(_ints(1, 2, 3, 4, 8, 64), _w((3, _ints(0, -1, 8192, 8193)), (1, _odd_int()))),
    "sockets": _field(_ints(1, 2), _w((3, _ints(0, 3, -1)), (1, _odd_int()))),
    "fail_alloc": _strings(FAIL_SITES, FAIL_SITE_ODD),
    "seed": _field(_ints(0, 1, 2, 42, 2**64 - 1), _odd_int()),
    "sev_vmcbs_garbage": _field(
        st.dictionaries(st.sampled_from(["0:1", "1:2", "0:3", "1:4"]), st.integers(0, 2**64 - 1), max_size=3),
        st.dictionaries(
            st.sampled_from(["9999:99999", "a:b", "0", "0:1:2", "00000:0", "0:", "-1:1"]),
            _odd_int(),
            max_size=3,
        ),
    ),
    "memlock_limit": _field(_ints(0, 4096, 65536, 2**20, 2**40), _odd_int()),
    "cap_ipc_lock": _field(st.booleans(), st.sampled_from(["yes", 1, 0, 2, None, "x"])),
}
assert set(HOST_FIELDS) == set(HostModel.model_fields), "every HostModel field needs values"

_OPS_BY_MODEL = {
    op: model for model in STEP_MODELS for op in getattr(model.model_fields["op"].annotation, "__args__", ())
}
assert set(_OPS_BY_MODEL) == set(OPS)

#: step sequences that get a VM (or two hosts) far enough for the later ops to do something
PRELUDES: tuple[tuple[dict[str, Any], ...], ...] = (
    (),
    ({"op": "vm_create", "vm": "a"}, {"op": "vm_create", "vm": "b"}),
    (
        {"op": "vm_create", "vm": "a"},
        {"op": "vm_create", "vm": "b"},
        {"op": "sev_init", "vm": "a"},
        {"op": "launch_start", "vm": "a", "policy": 0},
        {
            "op": "launch_update_data",
            "vm": "a",
            "uaddr": 0x7F0000100000,
            "data": {"pattern": "5a", "len": 4096},
        },
        {"op": "launch_measure", "vm": "a"},
        {"op": "launch_finish", "vm": "a"},
        {"op": "vcpu_create", "vm": "a"},
    ),
    (
        {"op": "vm_create", "vm": "a"},
        {"op": "vm_create", "vm": "b"},
        {"op": "sev_es_init", "vm": "a"},
        {"op": "vcpu_create", "vm": "a", "vmsa": {"pattern": "01", "len": 4096}},
        {"op": "launch_start", "vm": "a", "policy": 5},
        {"op": "launch_update_vmsa", "vm": "a"},
        {"op": "launch_measure", "vm": "a"},
    ),
    (
        {"op": "vm_create", "vm": "a"},
        {"op": "sev_init", "vm": "a"},
        {"op": "launch_start", "vm": "a", "policy": 0},
        {"op": "vm_create", "vm": "b"},
        {"op": "copy_enc_context_from", "vm": "b", "source": "a"},
    ),
)
#: hosts that some ops need, with the steps that get them going: an SNP guest in its launch,
#: and a VMM that may pin without limit with a 4 GiB buffer mapped at 0x7F0000000000 (the
#: first buffer a VM's process maps), for lengths that only a real host could hold
HOSTED_PRELUDES: tuple[tuple[dict[str, Any], tuple[dict[str, Any], ...]], ...] = (
    (
        {
            "profile": "epyc-9124",
            "kernel": "v6.12",
            "cpus": 2,
            "bios": ["sev_es_asid_space_limit=100", "snp=on"],
        },
        (
            {"op": "vm_create", "vm": "a", "type": 4},
            {"op": "sev_init2", "vm": "a"},
            {"op": "snp_launch_start", "vm": "a"},
        ),
    ),
    (
        {"profile": "lab", "cap_ipc_lock": True},
        (
            {"op": "vm_create", "vm": "a"},
            {"op": "sev_init", "vm": "a"},
            {"op": "launch_start", "vm": "a", "policy": 0},
            {"op": "launch_measure", "vm": "a", "len": 0xFFFFF000},
        ),
    ),
)
#: steps over the whole of what those hosts allow: 4 GiB from the mapped buffer, 2**40 bytes of
#: SNP guest pages, debug pieces that run past a page
_BIG = 0xFFFFF000
BIG_STEPS: tuple[dict[str, Any], ...] = (
    {"op": "launch_update_data", "vm": "a", "uaddr": 0x7F0000000000, "len": _BIG},
    {"op": "reg_region", "vm": "a", "uaddr": 0x7F0000000000, "size": _BIG},
    {"op": "reg_region", "vm": "a", "uaddr": 0x7F0000000000, "size": 2**40},
    {"op": "dbg_decrypt", "vm": "a", "src_uaddr": 0x7F0000000000, "dst_uaddr": 0x7F0000000FF0, "len": _BIG},
    {"op": "dbg_encrypt", "vm": "a", "data": {"zero": 4096}, "dst_uaddr": 0x7F0000000001},
    {"op": "launch_secret", "vm": "a", "secret": "00" * 16, "guest_uaddr": 0x7F0000000000},
    {"op": "snp_launch_update", "vm": "a", "type": 3, "len": 2**40},
    {"op": "snp_launch_update", "vm": "a", "type": 1, "uaddr": 0x7F0000000000, "len": 2**40},
    {"op": "snp_launch_update", "vm": "a", "type": 3, "gfn_start": 2**63, "len": 2**20},
)
MIGRATION_PRELUDE: tuple[dict[str, Any], ...] = (
    {"host": "src", "op": "vm_create", "vm": "a"},
    {"host": "src", "op": "sev_init", "vm": "a"},
    {"host": "src", "op": "launch_start", "vm": "a", "policy": 0},
    {"host": "src", "op": "launch_update_data", "vm": "a", "uaddr": 0x7F0000100000, "data": {"zero": 4096}},
    {"host": "src", "op": "launch_measure", "vm": "a"},
    {"host": "src", "op": "launch_finish", "vm": "a"},
    {"host": "src", "op": "send_start", "vm": "a", "to": "dst"},
    {"host": "src", "op": "send_update_data", "vm": "a", "uaddr": 0x7F0000100000, "len": 4096},
    {"host": "dst", "op": "vm_create", "vm": "b"},
    {"host": "dst", "op": "sev_init", "vm": "b"},
    {"host": "dst", "op": "receive_start", "vm": "b", "stream": "a"},
)


class _Picker:
    """Draws each field's value: valid, or (at the document's noise rate) odd.

    Documents come in three noise levels -- all valid, an odd value now and then, many -- so that
    some runs reach the model and the rest probe validation.
    """

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
        self.rate = draw(st.sampled_from([0, 12, 3]))

    def odd(self) -> bool:
        return self.rate > 0 and self.draw(st.integers(0, self.rate)) == self.rate

    def value(self, table: dict[str, tuple[Any, Any]], name: str) -> Any:
        valid, odd = table.get(name, GENERIC)
        return self.draw(odd if self.odd() else valid)


UNKNOWN_KEYS = st.sampled_from(
    ["extra", "Profile", "profiles", "cpu", "op ", "", "steps", "__class__", "vms"]
)


def _host(pick: _Picker) -> Any:
    if pick.odd():
        return pick.draw(WRONG_TYPES)
    host: dict[Any, Any] = {}
    for name in HOST_FIELDS:
        if name != "profile" and pick.draw(st.integers(0, 3)) != 3:
            continue
        kernel = host.get("kernel", "v5.13")
        if name in ("apply", "revert") and isinstance(kernel, str) and kernel in PRESETS and not pick.odd():
            # only what this kernel lacks (apply) or has (revert): anything else is refused
            names = (APPLICABLE if name == "apply" else REVERTIBLE)[kernel]
            host[name] = pick.draw(st.lists(st.sampled_from(names), max_size=2, unique=True)) if names else []
        else:
            host[name] = pick.value(HOST_FIELDS, name)
    if "profile" in host and host["profile"] != "lab" and "cpus" not in host and not pick.odd():
        host["cpus"] = 2  # a 256-thread profile is slow to boot in every run; CPU counts get their own values
    if pick.odd():
        host[pick.draw(UNKNOWN_KEYS)] = pick.draw(WRONG_TYPES)
    return host


def _step(pick: _Picker, hosts: list[str]) -> Any:
    draw = pick.draw
    if pick.odd() and draw(st.booleans()):
        return draw(st.one_of(WRONG_TYPES, st.just({"vm": "a"}), st.sampled_from(OPS)))
    op: Any = draw(st.sampled_from(OPS))
    if pick.odd():
        op = draw(
            st.one_of(
                st.sampled_from(["nope", "VM_CREATE", "", "vm-create", "vm_create "]), _nested(st.just(op))
            )
        )
    step: dict[Any, Any] = {"op": op}
    model = _OPS_BY_MODEL.get(op) if isinstance(op, str) else None
    fields = [n for n in (model.model_fields if model is not None else ()) if n not in ("op", "host")]
    for name in fields:
        assert model is not None
        required = model.model_fields[name].is_required()
        if not ((required and not pick.odd()) or (not required and draw(st.booleans()))):
            continue
        names_host = name == "to" or (name == "source" and op.startswith("receive"))
        if names_host and not pick.odd():
            step[name] = draw(st.sampled_from(hosts or ["host"]))
        else:
            step[name] = pick.value(STEP_FIELDS, name)
    if pick.odd():
        step["host"] = draw(STEP_FIELDS["host"][1])
    elif len(hosts) > 0 and draw(st.booleans()):
        step["host"] = draw(st.sampled_from(hosts))
    if pick.odd():
        step[draw(UNKNOWN_KEYS)] = draw(WRONG_TYPES)
    return step


@st.composite
def scenario_documents(draw: st.DrawFn) -> Any:
    """A scenario document (plain data, :class:`Raw` where the serializer cannot spell a value)."""
    pick = _Picker(draw)
    doc: dict[Any, Any] = {}
    if draw(st.booleans()):
        doc["description"] = draw(WRONG_TYPES if pick.odd() else st.text(max_size=30))
    multi = draw(st.integers(0, 3)) == 3
    hosts: list[str] = []
    if multi:
        names = draw(st.lists(HOST_NAMES, min_size=1, max_size=2, unique=True))
        if len(names) == 1 or pick.odd():
            names.append(draw(NAME_ODD if pick.odd() else st.just("third")))
        doc["hosts"] = {name: _host(pick) for name in names}
        for host in doc["hosts"].values():
            if isinstance(host, dict) and not pick.odd():
                host["profile"] = "lab"
        hosts = [n for n in names if isinstance(n, str)]
        if pick.odd():
            doc["host"] = _host(pick)
        prelude = MIGRATION_PRELUDE if draw(st.booleans()) and {"src", "dst"} <= set(hosts) else ()
    elif draw(st.integers(0, 5)) == 0:
        host, prelude = draw(st.sampled_from(HOSTED_PRELUDES))
        doc["host"] = _host(pick) if pick.odd() else dict(host)
        prelude = (*prelude, *draw(st.lists(st.sampled_from(BIG_STEPS), max_size=2)))
    else:
        if draw(st.integers(0, 5)) > 0:
            doc["host"] = _host(pick)
        prelude = draw(st.sampled_from(PRELUDES))
    steps = [dict(s) for s in prelude] + [_step(pick, hosts) for _ in range(draw(st.integers(0, 8)))]
    if steps and draw(st.integers(0, 15)) == 0:
        # one step over and over: totals (data, guest memory written) that no single step reaches
        again = draw(st.sampled_from(steps))
        copy = dict if isinstance(again, dict) else lambda step: step  # a step may be any value
        steps += [copy(again) for _ in range(draw(st.sampled_from([5, 60, 400])))]
    doc["steps"] = (
        steps
        if not pick.odd()
        else draw(_w((2, st.just(steps)), (1, WRONG_TYPES), (1, _nested(st.just(steps)))))
    )
    if pick.odd():
        doc[draw(UNKNOWN_KEYS)] = draw(WRONG_TYPES)
    return doc


def _dump(doc: Any, fmt: str) -> bytes:
    """``doc`` as YAML or JSON text, :class:`Raw` values spelled verbatim."""
    raws: list[Raw] = []

    def strip(value: Any) -> Any:
        if isinstance(value, Raw):
            raws.append(value)
            return f"RAWVALUE{len(raws) - 1}X"
        if isinstance(value, dict):
            return {strip(k) if isinstance(k, Raw) else k: strip(v) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    plain = strip(doc)
    if fmt == "json":
        text = json.dumps(plain)
        for i, raw in enumerate(raws):
            text = text.replace(f'"RAWVALUE{i}X"', raw.json)
    else:
        text = yaml.safe_dump(
            plain, sort_keys=False, default_flow_style=fmt == "yaml-flow", allow_unicode=True, width=1 << 20
        )
        for i, raw in enumerate(raws):
            text = text.replace(f"RAWVALUE{i}X", raw.yaml)
    return text.encode("utf-8", "surrogatepass")


FORMATS = st.sampled_from(["yaml-block", "yaml-flow", "json"])


def _suffix(fmt: str) -> st.SearchStrategy[str]:
    return _w(
        (6, st.just(".json" if fmt == "json" else ".yaml")),
        (1, st.sampled_from([".yml", "", ".txt", ".JSON"])),
    )


@functools.cache
def _run_options() -> st.SearchStrategy[list[str]]:
    """``kvmsev run``'s options after the file: overrides of the scenario's host, mostly valid
    (only those the parser has)."""
    later = sorted(set(APPLICABLE["v5.12"]) & set(APPLICABLE["v5.13"]))  # fixes neither preset has
    flags = {o.flag for o in COMMANDS.get(("run",), ())}
    table: list[tuple[int, str, st.SearchStrategy[str] | None]] = [
        (3, "--json", None),
        (2, "--kernel", st.sampled_from(sorted(PRESETS))),
        (2, "--apply", st.sampled_from(later)),
        (1, "--apply", st.sampled_from(PATCH_NAMES)),
        (1, "--revert", st.sampled_from(PATCH_NAMES)),
        (2, "--seed", st.sampled_from(_words("0 1 18446744073709551615 18446744073709551616 -1"))),
        (1, "--cpus", st.sampled_from(_words("1 2 4 0"))),
        (1, "--profile", st.sampled_from(["lab", "epyc-7551p", PROFILE_JSON])),
        (1, "--invariant", st.sampled_from(INVARIANT_NAMES)),
        (1, "--skip-invariant", st.sampled_from(INVARIANT_NAMES)),
    ]
    one = _w(
        *(
            (weight, st.just([flag]) if values is None else values.map(functools.partial(_pair, flag)))
            for weight, flag, values in table
            if flag in flags
        )
    )
    return st.lists(one, max_size=3).map(lambda parts: [a for part in parts for a in part])


def _pair(flag: str, value: str) -> list[str]:
    return [flag, value]


@st.composite
def scenario_files(draw: st.DrawFn) -> Case:
    """``kvmsev run FILE`` on a schema-shaped scenario (see :func:`scenario_documents`)."""
    fmt = draw(FORMATS)
    name = "scenario" + draw(_suffix(fmt))
    content = _dump(draw(scenario_documents()), fmt)
    return Case("scenario", ("run", name, *draw(_run_options())), files=((name, content),))


# -- malformed scenario files ----------------------------------------------------------------------
def _valid_bytes(fmt: str = "yaml-block") -> bytes:
    return _dump(VALID_SCENARIO, fmt)


NESTING_DEPTHS = _w((3, st.integers(50, 400)), (1, st.integers(400, 5000)), (1, st.integers(5000, 100_000)))


def _nest(kind: str, depth: int) -> str:
    if kind == "flow-list":
        return "[" * depth + "]" * depth
    if kind == "flow-map":
        return "{a: " * depth + "1" + "}" * depth
    if kind == "json-map":
        return '{"a": ' * depth + "1" + "}" * depth
    if kind == "block":
        depth = min(depth, 2000)  # indentation grows quadratically
        return "\n" + "".join(" " * i + "- \n" for i in range(depth)) + " " * depth + "1"
    return "- " * depth + "1"


@st.composite
def _deep(draw: st.DrawFn) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["flow-list", "flow-map", "json-map", "block", "dash"]))
    depth = draw(NESTING_DEPTHS)
    inner = _nest(kind, depth)
    where = draw(st.sampled_from(["top", "steps", "step-field", "host-field", "hosts"]))
    if where == "top":
        text = inner
    elif where == "steps":
        text = f"steps: {inner}\n" if kind != "block" else f"steps:{inner}\n"
    elif where == "step-field":
        text = (
            f"steps:\n- op: vm_create\n  vm: {inner}\n"
            if kind != "block"
            else f"steps:\n- op: vm_create\n  vm:{inner}\n"
        )
    elif where == "host-field":
        text = (
            f"host:\n  params: {inner}\nsteps: []\n"
            if kind != "block"
            else f"host:\n  params:{inner}\nsteps: []\n"
        )
    else:
        text = (
            f"hosts: {{a: {inner}}}\nsteps: []\n"
            if kind not in ("block", "dash")
            else f"hosts: {inner}\nsteps: []\n"
        )
    suffix = ".json" if kind == "json-map" and where == "top" else ".yaml"
    return suffix, text.encode()


@st.composite
def _alias_bomb(draw: st.DrawFn) -> tuple[str, bytes]:
    """Each level an alias list of the previous, expanded at most ~10**5 times in total."""
    width = draw(st.integers(2, 10))
    deepest = 1
    while width ** (deepest + 2) <= 100_000:  # level i holds width ** (i + 1) leaves
        deepest += 1
    levels = draw(st.integers(1, deepest))
    leaf = draw(st.sampled_from(["x", "{op: vm_create, vm: a}", "kvm_amd.sev=1", "1"]))
    lines = [f"a0: &a0 [{', '.join([leaf] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels + 1)]
    use = draw(
        st.sampled_from(
            [
                f"steps: *a{levels}",
                f"host: {{params: *a{levels}}}\nsteps: []",
                f"steps: [{{op: vm_create, vm: *a{levels}}}]",
                f"steps: [{{op: mem_write, vm: a, data: *a{levels}}}]",
                f"description: *a{levels}\nsteps: []",
                f"<<: {{steps: *a{levels}}}",
            ]
        )
    )
    return ".yaml", ("\n".join(lines) + "\n" + use + "\n").encode()


ODD_DOCUMENTS = st.sampled_from(
    [
        b"",
        b"\n",
        b"   \n\t\n",
        b"---\n",
        b"...\n",
        b"---\nsteps: []\n---\nsteps: []\n",
        b"\xef\xbb\xbf",
        b"\xef\xbb\xbfsteps: []\n",
        b"42",
        b"null",
        b"~",
        b"true",
        b"'text'",
        b"[1, 2]",
        b"- a\n- b\n",
        b"3.5",
        b".nan",
        b"!!binary aGk=",
        b"steps: [{op: [vm_create], vm: a}]",
        b"steps: [{op: {vm_create: 1}, vm: a}]",
        b"steps: [{op: 5}]",
        b"steps: [{op: null}]",
        b"steps: [{op: ''}]",
        b"steps: [{vm: a}]",
        b"steps: [vm_create]",
        b"steps: [[op, vm_create]]",
        b"steps: {op: vm_create, vm: a}",
        b"steps: vm_create",
        b"steps: null",
        b"steps:",
        b"host: []\nsteps: []",
        b"host: lab\nsteps: []",
        b"host: null\nsteps: []",
        b"hosts: []\nsteps: []",
        b"hosts: {}\nsteps: []",
        b"hosts: {a: null}\nsteps: []",
        b"hosts: {'': {}}\nsteps: []",
        b"hosts: {a: {}}\nhost: {}\nsteps: []",
        b"hosts: {a: {}, b: {}}\nsteps: [{op: vm_create, vm: a, host: c}]",
        b"hosts: {a: {}}\nsteps: [{op: send_start, vm: a, to: b}]",
        b"hosts: {" + b", ".join(b"h%d: {}" % i for i in range(17)) + b"}\nsteps: []",
        b"steps: [{op: vm_create, vm: a}]\nsteps: []\n",
        b"steps: []\n? [a, b]\n: 1\n",
        b"{1: 2, steps: []}",
        b"{null: 1, steps: []}",
        b"{true: 1, steps: []}",
        b"{2001-01-01: 1, steps: []}",
        b"{[1]: 2}",
        b"steps: !!python/object/apply:os.system ['true']",
        b"steps: !!set {a, b}",
        b"steps: !!omap [a: 1]",
        b"steps: []\nhost: {profile: !!binary bGFi}",
        b"steps: []\nhost: {seed: 2001-12-14}",
        b"steps: []\nhost: {cpus: 1:20}",
        b"steps: []\nhost: {cap_ipc_lock: yes}",
        b'steps: []\nhost: {profile: "lab\\0"}',
        b'steps: []\nhost: {profile: "\\ud800"}',
        b'steps: [{op: vm_create, vm: "\\uDCFF"}]',
        b"steps: []\r\nhost: {profile: lab}\r\n",
        b"steps: []\n\thost: {}\n",
        b"steps: []\x07\n",
        b"steps: []\n\x85host: {}\n",
        b"steps: [\n",
        b"steps: [{op: vm_create, vm: a}",
        b'{"steps": [], }',
        b'{"steps": [] // comment\n}',
        b'{"steps": NaN}',
        b'{"steps": [], "host": {"seed": Infinity}}',
        b'{"steps": [], "host": {"seed": 1e400}}',
        b'{"steps": [], "host": {"seed": ' + b"9" * 5000 + b"}}",
        b"steps: []\nhost: {seed: " + b"9" * 5000 + b"}",
        b"steps: []\nhost: {seed: 0x" + b"f" * 5000 + b"}",
        b"steps: []\ndescription: " + b"x" * 70000,
        b"steps: [" + b"{op: module_unload}, " * 2000 + b"]",
        b"steps: *a",
        b"a: &a [*a]\nsteps: *a",
        b"&a steps: []",
        b"steps: &a [*a]",
    ]
)


def _mutate(data: bytes, draw: st.DrawFn) -> bytes:
    """Flip, insert, delete or cut bytes of ``data``."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, max(len(out) - 1, 0)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
        if action == "flip" and out:
            out[where] ^= 1 << draw(st.integers(0, 7))
        elif action == "insert":
            out[where:where] = draw(
                st.one_of(
                    st.binary(min_size=1, max_size=8),
                    st.sampled_from(
                        [
                            b"\xff",
                            b"\xc3\x28",
                            b"\xed\xa0\x80",
                            b"\x00",
                            b":",
                            b"[",
                            b"{",
                            b"&a",
                            b"*a",
                            b"- ",
                            b"\t",
                        ]
                    ),
                )
            )
        elif action == "delete":
            del out[where : where + draw(st.integers(1, 16))]
        else:
            del out[where:]
    return bytes(out)


@st.composite
def _non_utf8(draw: st.DrawFn) -> tuple[str, bytes]:
    text = _valid_bytes().decode()
    how = draw(st.sampled_from(["insert", "latin-1", "utf-16", "surrogate"]))
    if how == "latin-1":
        return ".yaml", (text + "description: caf\u00e9\n").encode("latin-1")
    if how == "utf-16":
        return ".yaml", text.encode("utf-16")
    if how == "surrogate":
        return ".yaml", text.encode() + b"description: \xed\xb3\xbf\n"
    where = draw(st.integers(0, len(text)))
    return draw(st.sampled_from([".yaml", ".json"])), text[:where].encode() + draw(
        st.sampled_from([b"\xff", b"\x80", b"\xc3"])
    ) + text[where:].encode()


@st.composite
def malformed_scenario_files(draw: st.DrawFn) -> Case:
    """``kvmsev run FILE`` on a file that is not a scenario (see the module docstring)."""
    suffix, content = draw(
        st.one_of(
            st.tuples(st.sampled_from([".yaml", ".json", ""]), ODD_DOCUMENTS),
            st.tuples(st.sampled_from([".yaml", ".json"]), st.binary(max_size=300)),
            st.tuples(
                st.sampled_from([".yaml", ".json"]),
                st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
            ),
            _non_utf8(),
            _deep(),
            _alias_bomb(),
            st.tuples(st.sampled_from([".yaml", ".json"]), FORMATS.map(_valid_bytes)),
        )
    )
    if draw(st.booleans()):
        content = _mutate(content, draw)
    name = "scenario" + suffix
    return Case("malformed-scenario", ("run", name, *draw(_run_options())), files=((name, content),))


# -- command lines ---------------------------------------------------------------------------------
GARBAGE_ARGS = st.one_of(
    st.sampled_from(
        _words(
            "- -- -x --nope --json=1 \udcff \u00e9 0 -1 = a=b -h --help --version --profile --depth -0",
            *("--cpus=", "", " ", "x" * 300, "\u2028"),
        )
    ),
    st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=12),
)
#: paths for options that read a file or a directory
READ_PATHS = st.sampled_from(
    _words(
        "dir.yaml dir.json missing.yaml missing/deep.yaml - . /dev/null",
        *(VALID_YAML, VALID_JSON, INVALID_YAML, EMPTY_YAML, BINARY_YAML, UNDECODABLE_YAML, EMPTY_DIR),
        *(PLAIN_FILE, *ENDLESS, SYMLINK_LOOP, DANGLING, UNDER_FILE, HOST_DIR, READONLY_DIR, ""),
    )
)
#: paths for options that write
WRITE_PATHS = st.sampled_from(
    _words(
        "missing/deep/x /proc/kvmsev-fuzz /dev/null . \udcff-out",
        *(f"{OUT_DIR}/new", OUT_DIR, PLAIN_FILE, UNDER_FILE, f"{READONLY_DIR}/x", READONLY_DIR, HOST_DIR),
        *(VALID_YAML, PROC_CHILD, ENDLESS[0], SYMLINK_LOOP, DANGLING, ""),
    )
)
REGISTERS = st.one_of(
    st.integers(0, 2**32 - 1).map(str),
    st.integers(0, 2**32 - 1).map(lambda v: f"{v:#x}"),
    st.sampled_from(
        _words(
            "4294967295 4294967296 0x100000000 -1 0x 0X1f \u00b2 \u0661 1e3 0b1",
            *("", " 5", "9" * 5000, "0x" + "f" * 5000),
        )
    ),
)
WHOLE_NUMBERS = st.sampled_from(
    _words("0 1 -1 x 1.5 0x5 \u0663 \u00b2 18446744073709551616", "", " 3", "9" * 5000)
)


def _opt(name: str, values: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    """``--name VALUE``, sometimes ``--name=VALUE``, now and then ``--name=--`` (which argparse
    before Python 3.12 turns into an empty list instead of a string)."""
    return st.tuples(values, st.integers(0, 19)).map(
        lambda t: [f"{name}={t[0]}"] if t[1] < 4 else [f"{name}=--"] if t[1] == 4 else [name, t[0]]
    )


def _flags(*names: str) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(names), max_size=len(names), unique=True)


@dataclass(frozen=True, slots=True)
class Option:
    """One argument of a subcommand, as its argparse parser declares it."""

    #: the longest option string; "" for a positional
    flag: str
    dest: str
    takes_value: bool
    choices: tuple[str, ...] = ()


def _vocabulary() -> dict[tuple[str, ...], tuple[Option, ...]]:
    """Every (sub)command path of the real parser and its arguments.

    Read from ``build_parser()`` (through argparse's internals, stable for many releases) so
    that options added to the tool are fuzzed without anyone updating this file.
    """
    commands: dict[tuple[str, ...], tuple[Option, ...]] = {}

    def walk(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
        subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if subparsers:
            for name, child in subparsers[0].choices.items():
                walk(child, (*path, name))
            return
        options = []
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._VersionAction):
                continue
            flag = max(action.option_strings, key=len) if action.option_strings else ""
            choices = tuple(str(c) for c in action.choices) if action.choices else ()
            options.append(Option(flag, action.dest, action.nargs != 0, choices))
        commands[path] = tuple(options)

    walk(build_parser(), ())
    return commands


COMMANDS = _vocabulary()
ROOT_PATHS = st.sampled_from(
    _words(
        ". missing /dev/null /proc/kvmsev-fuzz",
        *(f"{HOST_DIR}/", EMPTY_DIR, PLAIN_FILE, ENDLESS[0], SYMLINK_LOOP, READONLY_DIR, UNDER_FILE, ""),
    )
)
INVARIANT_NAMES: tuple[str, ...] = tuple(invariants_mod.BY_NAME)
PROFILE_PATHS = (PROFILE_JSON, FUZZ_PROFILE_JSON)
PROFILE_PATH_ODD = (BAD_PROFILE_JSON, "missing.json", "dir.json", "endless.json", UNDER_FILE + ".json")
#: option values by argparse destination: (valid, odd); garbage is added to every option
OPTION_VALUES: dict[str, tuple[st.SearchStrategy[str], st.SearchStrategy[str]]] = {
    "profile": (
        _w((4, st.sampled_from(PROFILES)), (1, st.sampled_from(PROFILE_PATHS))),
        st.sampled_from(_words("nope LAB ../lab", "", *PROFILE_PATH_ODD)),
    ),
    "cpuid": (CPUID_VALID, CPUID_ODD),
    "kernel": (st.sampled_from(sorted(PRESETS)), st.sampled_from(["v5.14", "5.13", "", "V5.13"])),
    "apply": (st.sampled_from(PATCH_NAMES), st.sampled_from(["nope", ""])),
    "revert": (st.sampled_from(PATCH_NAMES), st.sampled_from(["nope", ""])),
    "param": (PARAMS, PARAM_ODD),
    "cmdline": (CMDLINES, CMDLINE_ODD),
    "config": (CONFIGS, CONFIG_ODD),
    "bios": (BIOS_VALUES, BIOS_ODD),
    "cpus": (
        st.sampled_from(_words("1 2 4 64 256 8192 0x10")),
        st.sampled_from(_words("0 8193 -1 99999999999999999999 010 1.5", "")),
    ),
    "sockets": (st.sampled_from(_words("1 2")), st.sampled_from(_words("0 3 -1 x 1.5 0x2", ""))),
    "fail_alloc": (FAIL_SITES, FAIL_SITE_ODD),
    "seed": (st.sampled_from(_words("0 1 42 18446744073709551615")), WHOLE_NUMBERS),
    "invariant": (st.sampled_from(INVARIANT_NAMES), st.sampled_from(["nope", "", "ALL"])),
    "skip_invariant": (st.sampled_from(INVARIANT_NAMES), st.sampled_from(["nope", "", "ALL"])),
    "file": (st.sampled_from([VALID_YAML, VALID_JSON]), READ_PATHS),
    "root": (st.just(HOST_DIR), ROOT_PATHS),
    "export_root": (st.sampled_from([f"{OUT_DIR}/new", OUT_DIR]), WRITE_PATHS),
    "capture": (st.sampled_from([f"{OUT_DIR}/new", OUT_DIR]), WRITE_PATHS),
    "out": (st.sampled_from([f"{OUT_DIR}/new", OUT_DIR]), WRITE_PATHS),
    **{reg: (REGISTERS, REGISTERS) for reg in ("EAX", "EBX", "ECX", "EDX")},
}
#: check's bounds: valid values that keep an exploration well under a second, and refused ones
CHECK_BOUNDS: dict[str, tuple[list[str], list[str]]] = {
    "--depth": (_words("1 2 4 6"), _words("0 -1 -6 1001 99999999999999999999 x 1.5 \u00b2", "", "9" * 5000)),
    "--max-states": (_words("1 10 500 2000"), _words("0 -5 x 2.5 \u00b2", "")),
    "--vms": (_words("1 2 3 4"), _words("0 5 -1 x 99")),
    "--vcpus": (_words("1 2 3 4"), _words("0 5 -1 x")),
}
CHEAP_CPUS = st.sampled_from(_words("1 2 3 4 8"))


#: options that name a file or directory: the odd paths (endless, looping, unwritable) matter more
PATH_DESTS = frozenset({"file", "root", "export_root", "capture", "out"})


def _values(option: Option, cheap: bool) -> st.SearchStrategy[str]:
    """Valid values mostly, odd ones and garbage sometimes."""
    if option.dest == "cpus" and cheap:
        valid, odd = CHEAP_CPUS, OPTION_VALUES["cpus"][1]
    elif option.dest in OPTION_VALUES:
        valid, odd = OPTION_VALUES[option.dest]
    elif option.choices:
        valid, odd = (
            st.sampled_from(option.choices),
            st.sampled_from([c.upper() for c in option.choices] + [""]),
        )
    else:
        valid, odd = GARBAGE_ARGS, GARBAGE_ARGS
    if option.dest in PATH_DESTS:
        return _w((3, valid), (3, odd), (1, GARBAGE_ARGS))
    return _w((4, valid), (1, odd), (1, GARBAGE_ARGS))


@st.composite
def _subcommand(draw: st.DrawFn, path: tuple[str, ...]) -> list[str]:
    """``kvmsev PATH ...`` with some of its options (each as often as the user likes) and its
    positionals; ``check`` always bounded (see :data:`CHECK_BOUNDS`)."""
    options = COMMANDS[path]
    check = path == ("check",)
    optionals = [o for o in options if o.flag and not (check and o.flag in CHECK_BOUNDS)]
    argv: list[str] = []
    for option in draw(st.lists(st.sampled_from(optionals), max_size=5)) if optionals else []:
        argv += draw(_opt(option.flag, _values(option, cheap=check))) if option.takes_value else [option.flag]
    positionals = [draw(_values(o, cheap=check)) for o in options if not o.flag]
    if draw(st.integers(0, 9)) == 9:  # one too few or one too many
        fewer = len(positionals) > 0 and draw(st.booleans())
        positionals = positionals[:-1] if fewer else [*positionals, "extra"]
    argv = positionals + argv if draw(st.booleans()) else argv + positionals
    if check:
        refused = draw(_w((6, st.none()), (1, st.sampled_from(sorted(CHECK_BOUNDS)))))
        for flag, (valid, invalid) in CHECK_BOUNDS.items():
            if flag == refused:
                argv += draw(_opt(flag, st.sampled_from(invalid)))
            elif flag in ("--depth", "--max-states") and refused in ("--depth", "--max-states"):
                argv += [flag, valid[-1]]  # the other bound holds the exploration small
            elif flag == "--max-states" or draw(st.booleans()):
                argv += [flag, draw(st.sampled_from(valid))]
    return [*path, *argv]


ODD_COMMANDS = st.one_of(
    st.sampled_from(
        [
            *([], ["--version"], ["--help"], ["-h"], ["nope"], ["BOOT"], ["b"], ["--json"], ["--", "boot"]),
            *(["boot", "--help"], ["cpuid", "decode", "--help"], ["check", "-h"], ["run"], ["run", "--json"]),
            *(["probe", "--root"], ["boot", "--cpus"], ["boot", "--prof", "lab"], ["boot", "--p", "x"]),
            *(
                ["boot", "--js"],
                ["check", "--dep", "2", "--max-s", "5"],
                ["check", "--depth=0x5", "--max-s=9"],
            ),
            *(["run", VALID_YAML, "--", "--json"], ["run", "--", "-x.yaml"], ["cpuid"], ["cpuid", "decode"]),
        ]
    ),
    st.lists(GARBAGE_ARGS, max_size=4),
)


@st.composite
def _profile_file(draw: st.DrawFn) -> bytes:
    """A profile file for ``--profile fuzz-profile.json``: a built-in one with values spoiled."""
    data = json.loads(_builtin_profile_text(draw(st.sampled_from(PROFILES))))
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from([*sorted(data), "svm_nasid", "extra"]))
        data[key] = draw(
            st.one_of(
                WRONG_TYPES.filter(lambda v: not isinstance(v, Raw)),
                st.sampled_from(BOUNDARY_INTS),
                st.just({"eax": "0x1", "ebx": -1, "ecx": "x", "edx": 2**40}),
                st.just({"smee": {"default": "maybe"}, "sev_es_asid_space_limit": {"min": "a", "max": None}}),
                st.just({"sev_asid_count": {"choices": "253", "default": 7}}),
                st.just({"major": "1", "minor": -1, "build": 2**64}),
            )
        )
    if draw(st.integers(0, 5)) == 5:
        return draw(
            st.sampled_from(
                [b"\xff{}", b"[" * 5000, b"", b"null", b"[1]", b'{"name": "x"}', b"{" + b"9" * 5000 + b"}"]
            )
        )
    return json.dumps(data).encode()


@st.composite
def command_lines(draw: st.DrawFn) -> Case:
    """``kvmsev ARGV`` for every subcommand, with paths into the scratch directory."""
    path = draw(st.sampled_from(sorted(COMMANDS)))
    argv = list(draw(_w((8, _subcommand(path)), (1, ODD_COMMANDS))))
    for _ in range(draw(_w((6, st.just(0)), (1, st.integers(1, 2))))):
        where = draw(st.integers(0, len(argv)))
        argv[where:where] = [draw(GARBAGE_ARGS)]
    argv = [a.replace("\x00", "") for a in argv]  # execve cannot pass a NUL in an argument
    files: tuple[tuple[str, bytes], ...] = ()
    if any(FUZZ_PROFILE_JSON in a for a in argv):
        files = ((FUZZ_PROFILE_JSON, draw(_profile_file())),)
    return Case("command-line", tuple(argv), files=files)


# -- recorded hosts --------------------------------------------------------------------------------
def _fixture_files(name: str) -> list[str]:
    base = FIXTURES_DIR / name
    return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())


FIXTURE_FILES: dict[str, list[str]] = {name: _fixture_files(name) for name in FIXTURES}
#: files the reader looks for that some fixtures lack
OPTIONAL_FILES: tuple[str, ...] = (
    *_words("proc/config.gz etc/modprobe.d/kvm.conf sys/fs/cgroup/misc.current sys/fs/cgroup/misc.capacity"),
    *_words("sys/module/kvm_amd/parameters/sev sys/module/kvm_intel sys/module/kvm_amd etc/modprobe.d"),
    *_words("dev/sev dev/kvm .kvmsev/dmesg.txt .kvmsev/probe.json .kvmsev proc"),
)
CPU_LISTS = st.one_of(
    st.sampled_from(
        _words(
            "0 0-7 0- -1 - 3-1 a 0-4294967295 0-99999999999999999999 0,,1 1-2-3 \u0663 \u00b2 , 0-0x10"
            " 0-1e9 1000000000 0,0,0 0-3,2-5",
            *("", " ", "0-3\n4", "9" * 5000, "0-" + "9" * 5000),
        )
    ),
    st.text(alphabet="0123456789-, \n", max_size=12),
)
CPUINFO = st.sampled_from(
    [
        "vendor_id\t: AuthenticAMD\n",
        "vendor_id\t: GenuineIntel\n",
        "vendor_id: AuthenticAMD\ncpu family: \u00b2\nmodel: 1\n",
        "vendor_id\t: AuthenticAMD\ncpu family\t: 99999999999999999999\nmodel\t\t: -1\n"
        "flags\t\t: sev sev_es hypervisor\n",
        "vendor_id\t: AuthenticAMD\ncpu family\t: " + "9" * 5000 + "\n",
        "vendor_id\t: AuthenticAMD\nflags\t\t: hypervisor\n",
        "vendor_id\t: AuthenticAMD\nflags\n",
        "no colon here\n\n",
        "\n\n\nvendor_id\t: AuthenticAMD\n",
        ": : :\n",
        "model name\t: " + "x" * 10000 + "\n",
    ]
)
CONFIG_TEXTS = st.sampled_from(
    [
        "CONFIG_KVM_AMD_SEV=y\n",
        "CONFIG_KVM_AMD_SEV=m\nCONFIG_AMD_MEM_ENCRYPT=y\n",
        "# CONFIG_KVM_AMD_SEV is not set\n",
        "CONFIG_KVM_AMD_SEV\n",
        "CONFIG_KVM_AMD_SEV=\nCONFIG_=y\n",
        "CONFIG_AMD_MEM_ENCRYPT_ACTIVE_BY_DEFAULT=maybe\n",
        "CONFIG_CGROUP_MISC=n\nCONFIG_NOPE=y\n",
    ]
)
OSRELEASES = st.sampled_from(
    _words(
        "../../etc/passwd 6.11.0 2.6.32 5 v5.13 \u0663.\u0663 99999999999999999999.1 /",
        *("", "\n", "5.13.0-kvmsev\n", "x" * 300, "5.13\x00", "5." + "9" * 5000, "5.13.0 extra words"),
    )
)
SYSFS_VALUES = st.sampled_from(_words("Y N 1 0 2 -1 yes \u0661 99999999999999999999", "", "Y\x00"))
MISC_TEXTS = st.sampled_from(
    [
        *(
            f"{line}\n"
            for line in ("sev 509\nsev_es 0", "sev", "sev x", "sev -1", "sev 99999999999999999999")
        ),
        *(f"{line}\n" for line in ("sev 1 2", "sev_es 5", " ", "sev 509\nsev 510", "max", "sev \u0663")),
        *("sev \u00b2\n", "sev " + "9" * 5000 + "\n"),
    ]
)
CMDLINE_TEXTS = CMDLINES.map(lambda s: s + "\n")
MODPROBE_TEXTS = st.sampled_from(
    [
        "options kvm_amd sev=1 sev_es=1\n",
        "options kvm-amd sev=x\n",
        "options kvm_amd\n",
        "options\n",
        "options kvm_amd sev\n",
        "options kvm_amd =1\n",
        "options kvm_amd sev=" + "9" * 5000 + "\n",
        "install kvm_amd /bin/true\n",
    ]
)
DMESG_TEXTS = st.sampled_from(
    [
        "SEV supported: x ASIDs\n",
        "SEV supported: 99999999999999999999 ASIDs\n",
        "SEV-ES supported: -1 ASIDs\n",
        "SEV enabled (ASIDs 253 - 1006)\nSEV-ES enabled (ASIDs 1 - 252)\n",
        "SEV enabled (ASIDs 9 - 1)\n",
        "ccp 0000:22:00.1: SEV API:x.y build:z\n",
        "ccp 0000:zz:00.1: sev enabled\n",
        "[    1.234] SEV supported: 509 ASIDs\n",
        "[ 1e9] kvm_amd: `2' invalid for parameter `sev'\n",
        "kvm_amd: \n" * 1000,
        "SEV supported: " + "9" * 5000 + " ASIDs\n",
    ]
)
GARBAGE_BYTES = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([b"", b"\x00", b"\x00" * 100, b"\xff\xfe", b"\xed\xa0\x80", b"Y\x00N", b"\n" * 1000]),
)


def _json_garbage() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.sampled_from(BOUNDARY_INTS),
        st.floats(),
        st.text(max_size=8),
    )
    return st.recursive(
        scalars,
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=3),
        max_leaves=8,
    )


REGS = st.one_of(
    st.lists(st.sampled_from(BOUNDARY_INTS), min_size=4, max_size=4),
    st.lists(st.integers(-1, 2**32), min_size=0, max_size=6),
    _json_garbage(),
)
PROBE_KEYS: dict[str, st.SearchStrategy[Any]] = {
    "format": st.sampled_from(["kvmsev.root/2", "", None, 1]),
    "uid": st.one_of(st.sampled_from(BOUNDARY_INTS), _json_garbage()),
    "cpuid": st.one_of(
        st.fixed_dictionaries({"0x8000001f": REGS}),
        st.fixed_dictionaries({"0x8000001F": REGS}),
        _json_garbage(),
    ),
    "msr": st.one_of(
        st.fixed_dictionaries(
            {},
            optional={
                "0xc0010010": st.one_of(st.sampled_from(BOUNDARY_INTS), _json_garbage()),
                "0xc0010131": st.one_of(st.sampled_from(BOUNDARY_INTS), _json_garbage()),
            },
        ),
        _json_garbage(),
    ),
    "kvm_api_version": st.one_of(st.sampled_from(BOUNDARY_INTS), _json_garbage()),
    "kvm_supported_cpuid_8000001f": REGS,
    "sev_platform_status": st.one_of(
        st.fixed_dictionaries(
            {},
            optional={
                k: st.one_of(st.sampled_from(BOUNDARY_INTS), _json_garbage())
                for k in ("api_major", "api_minor", "state", "flags", "build", "guest_count")
            },
        ),
        _json_garbage(),
    ),
    "dev": st.one_of(
        st.fixed_dictionaries(
            {},
            optional={
                d: st.one_of(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "mode": _json_garbage(),
                            "readable": _json_garbage(),
                            "writable": _json_garbage(),
                        },
                    ),
                    _json_garbage(),
                )
                for d in ("/dev/kvm", "/dev/sev")
            },
        ),
        _json_garbage(),
    ),
    "rlimit_memlock": st.one_of(
        st.lists(st.sampled_from(BOUNDARY_INTS), min_size=2, max_size=2), _json_garbage()
    ),
    "cpuid_reason": _json_garbage(),
    "msr_reason": _json_garbage(),
    "kvm_api_version_reason": _json_garbage(),
    "sev_platform_status_reason": _json_garbage(),
    "extra": _json_garbage(),
}


@st.composite
def _probe_json(draw: st.DrawFn, fixture: str) -> bytes:
    """``.kvmsev/probe.json``: the fixture's record with values spoiled, or not JSON at all."""
    source = FIXTURES_DIR / (fixture or GOOD_HOST) / ".kvmsev" / "probe.json"
    record: Any = json.loads(source.read_text()) if source.is_file() else {}
    kind = draw(_w((5, st.just("spoil")), (2, st.just("raw")), (1, st.just("shape"))))
    if kind == "spoil":
        for key in draw(st.lists(st.sampled_from(sorted(PROBE_KEYS)), min_size=1, max_size=3, unique=True)):
            if draw(st.integers(0, 5)) == 5:
                record.pop(key, None)
            else:
                record[key] = draw(PROBE_KEYS[key])
        return json.dumps(record).encode()
    if kind == "shape":
        return json.dumps(draw(_json_garbage())).encode()
    depth = draw(NESTING_DEPTHS)
    raw: list[bytes] = [
        b"",
        b"\xff\xfe{}",
        json.dumps(record).encode("utf-16"),
        b"[" * depth + b"]" * depth,
        b'{"a":' * depth + b"1" + b"}" * depth,
        b'{"uid": ' + b"9" * 5000 + b"}",
        b'{"uid": NaN, "cpuid": {"0x8000001f": [Infinity, 1, 2, 3]}}',
        b'{"uid": 0,',
        b'{"cpuid": {"0x8000001f": [1e400, -0.0, 1.5, 3]}}',
        b'{"uid": "\\ud800"}',
    ]
    return draw(st.sampled_from(raw))


@st.composite
def _config_gz(draw: st.DrawFn) -> bytes:
    """``/proc/config.gz``: truncated, bit-flipped, empty or not gzip at all."""
    good = gzip.compress(b"CONFIG_KVM_AMD_SEV=y\nCONFIG_AMD_MEM_ENCRYPT=y\n" * 20)
    kind = draw(st.sampled_from(["good", "truncated", "flipped", "empty", "plain", "double"]))
    if kind == "truncated":
        return good[: draw(st.integers(0, len(good) - 1))]
    if kind == "flipped":
        return _mutate(good, draw)
    if kind == "empty":
        return b""
    if kind == "plain":
        return b"CONFIG_KVM_AMD_SEV=y\n"
    if kind == "double":
        return gzip.compress(good)
    return good


def _content_for(path: str, fixture: str) -> st.SearchStrategy[bytes]:
    """Contents that are wrong in ways that fit the file, or plain garbage."""
    text: st.SearchStrategy[str] | None = None
    if path.endswith(("cpu/online", "cpu/present")):
        text = CPU_LISTS
    elif path == "proc/cpuinfo":
        text = CPUINFO
    elif path.startswith("boot/config-"):
        text = CONFIG_TEXTS
    elif path == "proc/sys/kernel/osrelease":
        text = OSRELEASES
    elif path.startswith("sys/module/kvm_amd/parameters/"):
        text = SYSFS_VALUES
    elif path.startswith("sys/fs/cgroup/"):
        text = MISC_TEXTS
    elif path == "proc/cmdline":
        text = CMDLINE_TEXTS
    elif path.startswith("etc/modprobe.d/"):
        text = MODPROBE_TEXTS
    elif path == ".kvmsev/dmesg.txt":
        text = DMESG_TEXTS
    elif path == ".kvmsev/probe.json":
        return _w((4, _probe_json(fixture)), (1, GARBAGE_BYTES))
    elif path == "proc/config.gz":
        return _config_gz()
    if text is None:
        return GARBAGE_BYTES
    return _w((4, text.map(lambda s: s.encode("utf-8", "surrogatepass"))), (1, GARBAGE_BYTES))


@st.composite
def _edits(draw: st.DrawFn, fixture: str) -> list[Edit]:
    files = FIXTURE_FILES.get(fixture, [])
    path = draw(_w((4, st.sampled_from(files or list(OPTIONAL_FILES))), (1, st.sampled_from(OPTIONAL_FILES))))
    action = draw(
        _w(
            (6, st.just("write")),
            (2, st.just("truncate")),
            (2, st.just("remove")),
            (1, st.just("mkdir")),
            (1, st.just("symlink")),
            (1, st.just("chmod")),
            (1, st.just("zero")),
        )
    )
    if action == "zero":
        # an endless file; the kernel log is the one a recording could plausibly get wrong this way
        target = draw(_w((4, st.just(".kvmsev/dmesg.txt")), (1, st.just(path))))
        return [Edit("symlink", target, target="/dev/zero")]
    if action == "write":
        edits = [Edit("write", path, draw(_content_for(path, fixture)))]
        if path == "proc/config.gz":  # the reader only falls back to it without /boot/config-RELEASE
            edits = [Edit("remove", f) for f in files if f.startswith("boot/")] + edits
        return edits
    if action == "truncate":
        return [Edit("truncate", path, size=draw(st.integers(0, 64)))]
    if action == "symlink":
        return [
            Edit(
                "symlink",
                path,
                target=draw(st.sampled_from(["/dev/null", "/", "", "missing", "/proc/self/fd/0"])),
            )
        ]
    if action == "chmod":
        return [Edit("chmod", path, size=draw(st.sampled_from([0, 0o200, 0o111])))]
    return [Edit(action, path)]


@st.composite
def recorded_hosts(draw: st.DrawFn) -> Case:
    """``kvmsev probe --root DIR`` on a corrupted copy of a recorded host."""
    kind = draw(_w((10, st.just("fixture")), (1, st.just("empty")), (1, st.just("unrelated"))))
    options = draw(_flags("--json"))
    if draw(st.integers(0, 4)) == 4:
        options += draw(
            _opt(
                "--capture",
                st.sampled_from(
                    [f"{OUT_DIR}/capture", "", ROOT_DIR, f"{ROOT_DIR}/proc", PLAIN_FILE, UNDER_FILE]
                ),
            )
        )
    if kind == "unrelated":
        return Case(
            "recorded-host",
            (
                "probe",
                "--root",
                draw(st.sampled_from([".", EMPTY_DIR, OUT_DIR, f"{HOST_DIR}/proc"])),
                *options,
            ),
        )
    fixture = draw(st.sampled_from(FIXTURES)) if kind == "fixture" else ""
    edits: list[Edit] = []
    if kind == "fixture":
        for _ in range(draw(st.integers(1, 4))):
            edits += draw(_edits(fixture))
    elif draw(st.booleans()):
        edits += draw(_edits(""))
    if draw(st.integers(0, 20)) == 20:
        edits.append(Edit("clear"))
    return Case("recorded-host", ("probe", "--root", ROOT_DIR, *options), host=fixture, edits=tuple(edits))


#: each family's strategy, by name
STRATEGIES: dict[Family, st.SearchStrategy[Case]] = {
    "scenario": scenario_files(),
    "malformed-scenario": malformed_scenario_files(),
    "command-line": command_lines(),
    "recorded-host": recorded_hosts(),
}
