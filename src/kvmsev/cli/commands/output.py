"""Printing a command's answer: the documented JSON, or the human view."""

from __future__ import annotations

import json
from typing import Any


def emit(data: Any, as_json: bool, human: str) -> None:
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        print(human)
