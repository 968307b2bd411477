"""The published JSON Schemas: generated from the models, and the files kvmsev ships obey them
as an independent validator (jsonschema) reads them."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from kvmsev.cli.commands.schema import DOCUMENTS

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted(p for p in (ROOT / "examples").rglob("*.yaml"))
PROFILES = sorted((ROOT / "src" / "kvmsev" / "hw" / "profiles").glob("*.json"))


@pytest.mark.parametrize("document", sorted(DOCUMENTS))
def test_published_schema_is_the_one_the_models_generate(document: str) -> None:
    published = json.loads((ROOT / "docs" / f"{document}.schema.json").read_text())
    assert published == DOCUMENTS[document](), (
        f"regenerate: kvmsev schema {document} > docs/{document}.schema.json"
    )


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT / "examples")))
def test_every_example_scenario_obeys_the_published_schema(path: Path) -> None:
    schema = json.loads((ROOT / "docs" / "scenario.schema.json").read_text())
    jsonschema.validate(yaml.safe_load(path.read_text()), schema)


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.stem)
def test_every_shipped_profile_obeys_the_published_schema(path: Path) -> None:
    schema = json.loads((ROOT / "docs" / "profile.schema.json").read_text())
    jsonschema.validate(json.loads(path.read_text()), schema)


def test_the_schema_refuses_what_the_tool_refuses() -> None:
    schema = json.loads((ROOT / "docs" / "profile.schema.json").read_text())
    good = json.loads(PROFILES[0].read_text())
    for bad in ({**good, "sev_firmware": "false"}, {**good, "turbo": True}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
