"""For any CPUID values, parameters and switches, boot never crashes and its answers agree."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from kvmsev.kernel.alloc import KMALLOC_MAX_SIZE
from kvmsev.kvm.patches import BY_NAME, PATCHES
from tests.conftest import boot

u32 = st.integers(min_value=0, max_value=0xFFFF_FFFF)
small = st.integers(min_value=0, max_value=1100)
param_values = st.sampled_from([None, "0", "1", "2", "-1", "y", "N", "on", "off", "", "maybe", "0x1"])
switchable = [p.name for p in PATCHES if p.field is not None and p.name != "cpuid-mask-v4"]


@settings(max_examples=300, deadline=None)
@given(
    eax=u32,
    ebx=u32,
    ecx=st.one_of(small, u32),
    edx=st.one_of(small, u32),
    sev=param_values,
    sev_es=param_values,
    npt=param_values,
    kernel=st.sampled_from(["v5.12", "v5.13"]),
    toggles=st.lists(st.sampled_from(switchable), unique_by=lambda name: BY_NAME[name].field, max_size=4),
    smee=st.booleans(),
    kvm_amd_sev=st.booleans(),
)
@example(  # sev_vmcbs of 524,289 pointers: 8 bytes over KMALLOC_MAX_SIZE, so the load fails
    eax=2,
    ebx=0,
    ecx=524288,
    edx=0,
    sev="1",
    sev_es=None,
    npt=None,
    kernel="v5.12",
    toggles=[],
    smee=True,
    kvm_amd_sev=True,
)
def test_boot_is_total_and_consistent(
    eax: int,
    ebx: int,
    ecx: int,
    edx: int,
    sev: str | None,
    sev_es: str | None,
    npt: str | None,
    kernel: str,
    toggles: list[str],
    smee: bool,
    kvm_amd_sev: bool,
) -> None:
    from kvmsev.kvm.kernels import PRESETS

    base = PRESETS[kernel]
    apply = [t for t in toggles if getattr(base, BY_NAME[t].field or "") != BY_NAME[t].applied]
    revert = [t for t in toggles if t not in apply]
    params = [
        f"kvm_amd.{n}={v}" for n, v in (("sev", sev), ("sev_es", sev_es), ("npt", npt)) if v is not None
    ]
    report = boot(
        unload=True,
        kernel=kernel,
        cpuid=f"{eax}:{ebx}:{ecx}:{edx}",
        params=params,
        apply=apply,
        revert=revert,
        bios=f"smee={'on' if smee else 'off'}",
        config=f"CONFIG_KVM_AMD_SEV={'y' if kvm_amd_sev else 'n'}",
        cpus=2,
    )

    host = report["host_cpuid_8000001f"]
    if not report["loaded"]:
        if report["load_error"] == "ENOMEM":
            # only where a per-CPU sev_vmcbs array (max_sev_asid + 1 pointers) or an ASID bitmap
            # is larger than the largest kmalloc, and the page allocator said so
            assert (host["ecx"] + 1) * 8 > KMALLOC_MAX_SIZE
            assert "WARNING: at mm/page_alloc.c __alloc_pages" in report["dmesg"]
        else:
            assert report["load_error"] in ("EINVAL", "ERANGE")
        assert report["supported_cpuid_8000001f"] is None
        return
    sev_on, es_on = report["sev_enabled"], report["sev_es_enabled"]
    assert not es_on or sev_on, "SEV-ES implies SEV"
    assert not sev_on or (host["eax"] & 0x2 and smee and kvm_amd_sev and host["ecx"] > 0)
    if sev_on:
        assert report["max_sev_asid"] == host["ecx"] and report["min_sev_asid"] == host["edx"]
        b = report["behaviour"]
        # 5.12/5.13 search from position edx - 1 and cannot hand out ASID 0; from 5.14 the range
        # starts at edx itself (0 included); until 6.9 the bounds are C ints
        lowest = 0 if b["asid_bitmap_real_index"] else 1
        fits = b["asid_unsigned"] or host["ecx"] < 2**31
        usable = lowest <= host["edx"] <= host["ecx"] and fits
        assert report["sev_asid_range"] == ([host["edx"], host["ecx"]] if usable else None)
    if es_on:
        assert host["edx"] != 1 and host["eax"] & 0x8
    supported = report["supported_cpuid_8000001f"]
    assert supported["eax"] & ~host["eax"] == 0, "advertised bits are a subset of the host's"
    assert supported["ecx"] in (0, host["ecx"]) and supported["edx"] in (0, host["edx"])
    if report["behaviour"]["cpuid_mask"] == "masked":
        assert bool(supported["eax"] & 0x2) == sev_on
        assert bool(supported["eax"] & 0x8) == es_on
    for name in ("sev", "sev_es"):
        text = report["sysfs"].get(name)
        assert text in (None, "0", "1", "Y", "N")
        if text is not None:
            assert (text in ("1", "Y")) == report[f"{name}_enabled"]
    unload = report["unload"]
    if unload["oops"] is None:
        assert unload["leaked_bytes"] == 0 or report["behaviour"]["gates_on_sev_enabled"]
