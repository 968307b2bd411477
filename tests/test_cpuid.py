from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvmsev.errors import InputError
from kvmsev.hw.cpuid import EAX_FEATURES, Cpuid8000001F, parse_leaf, parse_register

u32 = st.integers(min_value=0, max_value=0xFFFF_FFFF)


def test_milan_leaf_decodes_to_its_documented_fields() -> None:
    leaf = parse_leaf("0001FC3F-00004173-000001FD-00000001")
    assert leaf.c_bit == 51
    assert leaf.phys_addr_reduction == 5
    assert leaf.num_vmpls == 4
    assert leaf.max_sev_asid == 509
    assert leaf.min_sev_asid == 1
    assert leaf.features == (
        "SME",
        "SEV",
        "VM_PAGE_FLUSH",
        "SEV_ES",
        "SEV_SNP",
        "VMPL",
        "SME_COHERENT",
        "REQ_64BIT_HYPERVISOR",
        "RESTRICTED_INJECTION",
        "ALTERNATE_INJECTION",
        "DEBUG_SWAP",
        "PREVENT_HOST_IBS",
        "VTE",
    )


def test_asid_split_follows_edx() -> None:
    decoded = Cpuid8000001F(0xF, 0x16F, 509, 100).decode()
    assert decoded["sev_asid_range"] == [100, 509]
    assert decoded["sev_es_asid_range"] == [1, 99]
    assert Cpuid8000001F(0xF, 0x16F, 509, 1).decode()["sev_es_asid_range"] is None


def test_every_eax_bit_has_a_name() -> None:
    assert sorted(EAX_FEATURES) == list(range(32))


@given(eax=u32, ebx=u32, ecx=u32, edx=u32)
def test_encode_inverts_decode(eax: int, ebx: int, ecx: int, edx: int) -> None:
    leaf = Cpuid8000001F(eax, ebx, ecx, edx)
    again = Cpuid8000001F.encode(
        features=leaf.features,
        c_bit=leaf.c_bit,
        phys_addr_reduction=leaf.phys_addr_reduction,
        num_vmpls=leaf.num_vmpls,
        ebx_reserved=leaf.ebx >> 16,
        max_sev_asid=leaf.ecx,
        min_sev_asid=leaf.edx,
    )
    assert again == leaf


@pytest.mark.parametrize(
    ("text", "value"),
    [("0x1FD", 509), ("509", 509), ("0X0", 0), ("4294967295", 0xFFFF_FFFF), ("000001", 1)],
)
def test_register_values_accept_hex_and_decimal(text: str, value: int) -> None:
    assert parse_register(text, "ECX") == value


@pytest.mark.parametrize("text", ["", "1FD", "0x", "-1", "0x100000000", "4294967296", "12abc", "000001FD"])
def test_malformed_register_values_name_the_field(text: str) -> None:
    with pytest.raises(InputError) as err:
        parse_register(text, "ECX")
    assert str(err.value).startswith("ECX: ")


def test_dump_form_is_hex_and_colon_form_is_not() -> None:
    assert parse_leaf("0000000F-0000016F-0000000F-00000005") == Cpuid8000001F(15, 0x16F, 15, 5)
    assert parse_leaf("15:367:15:5") == Cpuid8000001F(15, 0x16F, 15, 5)
    with pytest.raises(InputError):
        parse_leaf("F-16F-F-5")


def test_leaf_needs_four_registers() -> None:
    with pytest.raises(InputError, match="four registers"):
        parse_leaf("1:2:3")
