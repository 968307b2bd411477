"""Errors the model reports, and the input errors the tool refuses.

Two different things live here and must not be confused:

* :class:`Errno` holds the Linux errno values the modeled kernel returns. They are model output:
  a module load failing with ``-EINVAL`` is a faithful answer, not a tool error.
* :class:`InputError` is raised when *the user's request to the tool* is malformed (unknown
  profile, malformed CPUID value, unknown Kconfig symbol). The CLI turns it into a one-line
  message and exit code 2.
"""

from __future__ import annotations

import enum


class Errno(enum.IntEnum):
    """Linux errno values (include/uapi/asm-generic/errno-base.h, errno.h) used by the model."""

    EPERM = 1
    ENOENT = 2
    EIO = 5
    ENXIO = 6
    EBADF = 9
    ENOMEM = 12
    EFAULT = 14
    EBUSY = 16
    EEXIST = 17
    ENODEV = 19
    EINVAL = 22
    ENOTTY = 25
    ENOSPC = 28
    ERANGE = 34


class InputError(ValueError):
    """A request the tool cannot act on; the message names the field and what is accepted."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
