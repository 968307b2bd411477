"""``kvmsev schema``: the JSON Schema of the files kvmsev reads, for editors and CI linters."""

from __future__ import annotations

import argparse
import json
from typing import Any

from kvmsev.cli.style import Style
from kvmsev.hw import profile_schema
from kvmsev.scenario import schema as scenario_schema

DOCUMENTS = {
    "scenario": scenario_schema.json_schema,
    "profile": profile_schema.json_schema,
}


def add(sub: Any) -> None:
    p = sub.add_parser(
        "schema",
        help="print the JSON Schema of scenario or profile files (docs/scenario.schema.json, "
        "docs/profile.schema.json)",
    )
    p.add_argument("document", choices=sorted(DOCUMENTS), help="which file format")
    p.set_defaults(execute=execute, parser=p)


def execute(args: argparse.Namespace, style: Style) -> int:
    print(json.dumps(DOCUMENTS[args.document](), indent=2))
    return 0
