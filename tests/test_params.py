"""Module parameter parsing as kernel/params.c and lib/kstrtox.c do it (5.12/5.13)."""

from __future__ import annotations

import pytest

from kvmsev.errors import Errno
from kvmsev.kernel.params import (
    BoolLetters,
    ParamDecl,
    ParamType,
    kstrtobool,
    kstrtoint,
    kstrtouint,
    parse_module_args,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", 1),
        ("0x1", 1),
        ("1\n", 1),
        ("+1", 1),
        ("-1", -1),
        ("2", 2),
        ("010", 8),
        ("0", 0),
        (" 1", Errno.EINVAL),
        ("", Errno.EINVAL),
        ("yes", Errno.EINVAL),
        ("0x", Errno.EINVAL),
        ("08", Errno.EINVAL),
        ("1\n\n", Errno.EINVAL),
        ("2147483648", Errno.ERANGE),
        ("-2147483648", -(2**31)),
    ],
)
def test_kstrtoint_accepts_what_the_kernel_accepts(text: str, expected: int | Errno) -> None:
    assert kstrtoint(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("yes", True),
        ("10", True),
        ("on", True),
        ("oN", True),
        ("1\n", True),
        ("Y", True),
        ("0x", False),
        ("Nope", False),
        ("Of", False),
        ("offxyz", False),
        ("n", False),
        ("2", Errno.EINVAL),
        ("o", Errno.EINVAL),
        ("", Errno.EINVAL),
        (" y", Errno.EINVAL),
        ("true", Errno.EINVAL),
        ("t", Errno.EINVAL),
    ],
)
def test_strtobool_reads_only_the_first_characters(text: str, expected: bool | Errno) -> None:
    assert kstrtobool(text) == expected


SEV_INT = ParamDecl("sev", ParamType.INT, 0)
SEV_BOOL = ParamDecl("sev", ParamType.BOOL, True)
SEV_ES_BOOL = ParamDecl("sev_es", ParamType.BOOL, True)


def test_invalid_value_prints_kernel_message_and_fails() -> None:
    out = parse_module_args("kvm_amd", [("sev", "maybe")], [SEV_BOOL])
    assert out.error is Errno.EINVAL
    assert out.dmesg == ("kvm_amd: `maybe' invalid for parameter `sev'",)


def test_unknown_parameter_only_warns() -> None:
    out = parse_module_args("kvm_amd", [("sev_snp", "1"), ("sev", "0")], [SEV_BOOL])
    assert out.error is None
    assert out.dmesg == ("kvm_amd: unknown parameter 'sev_snp' ignored",)
    assert out.values["sev"] is False


def test_parsing_continues_after_an_error_and_keeps_the_last_error() -> None:
    out = parse_module_args("kvm_amd", [("sev", "2"), ("sev_es", "0"), ("sev", "x")], [SEV_BOOL, SEV_ES_BOOL])
    assert len(out.dmesg) == 2
    assert out.values["sev_es"] is False


def test_bool_without_value_means_true_but_int_without_value_fails() -> None:
    assert parse_module_args("kvm_amd", [("sev", None)], [SEV_BOOL]).values["sev"] is True
    failed = parse_module_args("kvm_amd", [("sev", None)], [SEV_INT])
    assert failed.error is Errno.EINVAL
    assert failed.dmesg == ("kvm_amd: `' invalid for parameter `sev'",)


def test_dash_and_underscore_are_the_same_in_names() -> None:
    out = parse_module_args("kvm_amd", [("sev-es", "0")], [SEV_BOOL, SEV_ES_BOOL])
    assert out.values["sev_es"] is False


def test_later_words_override_earlier_ones() -> None:
    out = parse_module_args("kvm_amd", [("sev", "0"), ("sev", "1")], [SEV_BOOL])
    assert out.values["sev"] is True


def test_sysfs_text_is_int_or_y_n() -> None:
    assert SEV_INT.render(1) == "1"
    assert SEV_INT.render(0) == "0"
    assert SEV_BOOL.render(True) == "Y"
    assert SEV_BOOL.render(False) == "N"


@pytest.mark.parametrize(
    ("text", "letters", "expected"),
    [
        ("true", BoolLetters.YES_NO, Errno.EINVAL),
        ("true", BoolLetters.TRUE_FALSE, True),
        ("F", BoolLetters.TRUE_FALSE, False),
        ("enabled", BoolLetters.TRUE_FALSE, Errno.EINVAL),
        ("enabled", BoolLetters.ENABLED_DISABLED, True),
        ("Disabled", BoolLetters.ENABLED_DISABLED, False),
        ("off", BoolLetters.ENABLED_DISABLED, False),
        ("x", BoolLetters.ENABLED_DISABLED, Errno.EINVAL),
    ],
)
def test_kstrtobool_letters_grow_in_5_19_and_6_16(
    text: str, letters: BoolLetters, expected: bool | Errno
) -> None:
    assert kstrtobool(text, letters) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("40", 40),
        ("+7", 7),
        ("0x10", 16),
        ("4294967295", 4294967295),
        ("4294967296", Errno.ERANGE),
        ("-1", Errno.EINVAL),
        ("-0", Errno.EINVAL),
        ("+-1", Errno.EINVAL),
        ("", Errno.EINVAL),
    ],
)
def test_uint_parameters_refuse_any_minus_sign(text: str, expected: int | Errno) -> None:
    assert kstrtouint(text) == expected
