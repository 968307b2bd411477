"""The profile file format, validated by pydantic; ``kvmsev schema profile`` prints its JSON
Schema (``docs/profile.schema.json``).

A profile is data a user may write by hand for a part kvmsev does not ship, so every value is
checked for its type (``"sev_firmware": "false"`` is a string, not a boolean), every key must be
known, BIOS options must be ones the model implements, and ranges must be ranges.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from kvmsev.errors import InputError

#: x86_64 NR_CPUS upper bound (CONFIG_MAXSMP)
MAX_CPUS = 8192


def _register(value: Any) -> Any:
    """A register as a JSON number or as the text a CPUID dump shows (``0x0001FC3F``, ``509``)."""
    if isinstance(value, bool):
        raise ValueError("expected a register value, got a boolean")
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text[2:], 16) if text.lower().startswith("0x") else int(text, 10)
        except ValueError:
            raise ValueError(f"{value[:20]!r} is not a register value (0x-prefixed hex or decimal)") from None
    return value


def _register_schema(high: int) -> WithJsonSchema:
    """The published form of a register: a number, or hex / decimal text as dumps print it."""
    text = {"type": "string", "pattern": r"^\s*(0[xX][0-9a-fA-F]+|[0-9]+)\s*$"}
    return WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 0, "maximum": high}, text]})


Register = Annotated[
    StrictInt, BeforeValidator(_register), Field(ge=0, le=2**32 - 1), _register_schema(2**32 - 1)
]
Register64 = Annotated[
    StrictInt, BeforeValidator(_register), Field(ge=0, le=2**64 - 1), _register_schema(2**64 - 1)
]
Text = Annotated[StrictStr, Field(max_length=256)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Leaf(_Model):
    """CPUID Fn8000_001F as the part reports it."""

    eax: Register
    ebx: Register
    ecx: Register
    edx: Register


class SevApi(_Model):
    major: Annotated[StrictInt, Field(ge=0, le=255)]
    minor: Annotated[StrictInt, Field(ge=0, le=255)]
    build: Annotated[StrictInt, Field(ge=0, le=255)]


class Smee(_Model):
    """BIOS "SMEE" / "Memory Encryption"."""

    default: Literal["on", "off"] = "on"


class Snp(_Model):
    """BIOS "SEV-SNP Support"."""

    default: Literal["on", "off"] = "off"


class Smt(_Model):
    """BIOS "SMT Control": with SMT off the OS sees one thread per core, and the SNP firmware
    refuses a guest policy without the SMT bit only while it is on."""

    default: Literal["on", "off"] = "on"


class EsLimit(_Model):
    """BIOS "SEV-ES ASID Space Limit": the values the setup screen accepts."""

    min: Annotated[StrictInt, Field(ge=1, le=2**32 - 1)] = 1
    max: Annotated[StrictInt, Field(ge=1, le=2**32 - 1)] | None = None

    @model_validator(mode="after")
    def _range(self) -> EsLimit:
        if self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class AsidCount(_Model):
    """BIOS "SEV ASID Count": the choices offered, and which one the part ships with."""

    choices: Annotated[
        list[Annotated[StrictInt, Field(ge=1, le=2**32 - 1)]], Field(min_length=1, max_length=64)
    ]
    default: Annotated[StrictInt, Field(ge=1, le=2**32 - 1)] | None = None

    @model_validator(mode="after")
    def _default_offered(self) -> AsidCount:
        if self.default is not None and self.default not in self.choices:
            raise ValueError(f"default {self.default} is not one of the choices {self.choices}")
        return self


class Bios(_Model):
    """The BIOS options the platform offers; an option left out does not exist there."""

    smee: Smee | None = None
    #: "SEV-SNP Support" (default off: enabling it is a documented manual step)
    snp: Snp | None = None
    smt: Smt | None = None
    sev_es_asid_space_limit: EsLimit | None = None
    sev_asid_count: AsidCount | None = None


class ProfileModel(_Model):
    """A CPU profile file."""

    name: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    model_name: Text
    codename: Text = ""
    vendor: Literal["AuthenticAMD"]
    family: Annotated[StrictInt, Field(ge=0, le=0xFFF)]
    model: Annotated[StrictInt, Field(ge=0, le=0xFF)]
    threads: Annotated[StrictInt, Field(ge=1, le=MAX_CPUS)]
    #: how many of the part a board can hold: 1 for single-socket ("P") and client parts, 2 for
    #: the others (``threads`` counts one socket)
    max_sockets: Literal[1, 2] = 1
    cpuid_8000001f: Leaf
    #: CPUID Fn8000_000A EDX, the SVM feature bits (NRIPS, LbrVirt, VNMI, ...); default: the
    #: Rome/Naples set (no x2AVIC, no VNMI)
    cpuid_8000000a_edx: Register = 0x0013BCFF
    #: CPUID Fn8000_0021 EAX (bit 0 NoNestedDataBp); 0 on parts without the leaf
    cpuid_80000021_eax: Register = 0
    syscfg: Register64 = 0
    hwcr: Register64 = 1
    sev_firmware: StrictBool = False
    sev_api: SevApi | None = None
    bios: Bios = Bios()
    #: where each value comes from (free text per value)
    sources: Annotated[dict[Text, Annotated[StrictStr, Field(max_length=4096)]], Field(max_length=64)]
    #: CPUID Fn8000_000A EBX (NASID): ASIDs SVM offers
    svm_nasid: Annotated[
        StrictInt, BeforeValidator(_register), Field(ge=2, le=2**32 - 1), _register_schema(2**32 - 1)
    ] = 0x8000


def validate(data: Any, where: str) -> ProfileModel:
    """The profile document checked; the first problem names the file and the field."""
    if not isinstance(data, dict):
        raise InputError(where, "a profile must be a JSON object")
    try:
        return ProfileModel.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"])
        problem = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            problem = "unknown field"
        raise InputError(f"{where}: {field}" if field else where, problem) from None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of profile files (for editors; ``docs/profile.schema.json``)."""
    schema = ProfileModel.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "kvmsev CPU profile"
    return schema
