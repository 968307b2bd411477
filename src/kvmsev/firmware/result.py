"""What a firmware command returns to the driver: ``ret``, the status code, and what it wrote back."""

from __future__ import annotations

from dataclasses import dataclass

from kvmsev.errors import Errno
from kvmsev.firmware.status import Command, Status

EIO = -int(Errno.EIO)
ENODEV = -int(Errno.ENODEV)


@dataclass(frozen=True, slots=True)
class CommandResult:
    """One command as the driver saw it: ``ret`` is the driver's return (0, -EIO, -ENODEV),
    ``status`` the firmware code (None when the firmware was never reached), ``out`` what the
    firmware wrote back (handle, measurement, status fields, required length)."""

    command: Command
    ret: int
    status: Status | None
    out: object = None

    @property
    def ok(self) -> bool:
        return self.ret == 0

    @property
    def code(self) -> int:
        """The value Linux stores in ``*error``: the status, or 0 when never reached."""
        return 0 if self.status is None else int(self.status)

    def as_dict(self) -> dict[str, object]:
        return {
            "cmd": self.command.name,
            "ret": self.ret,
            "status": None if self.status is None else self.status.name,
            "code": None if self.status is None else int(self.status),
        }


_RESULTS: dict[tuple[Command, Status], CommandResult] = {}


def result(command: Command, status: Status, out: object = None) -> CommandResult:
    """A command's result; those without payload are interned so the hot paths allocate nothing.

    A failing command can still write back (INVALID_LEN with the required length): ``ret`` is
    -EIO whenever the status is not SUCCESS.
    """
    if out is not None:
        return CommandResult(command, 0 if status is Status.SUCCESS else EIO, status, out)
    key = (command, status)
    cached = _RESULTS.get(key)
    if cached is None:
        cached = _RESULTS[key] = CommandResult(command, 0 if status is Status.SUCCESS else EIO, status)
    return cached
