"""``kvm_amd``'s module parameters that the model represents, per kernel behaviour.

* ``sev`` / ``sev_es``: 5.12 declares ``int sev = IS_ENABLED(CONFIG_AMD_MEM_ENCRYPT_ACTIVE_BY_DEFAULT);
  module_param(sev, int, 0444)`` in svm.c; 5.13 declares ``static bool sev_enabled = true;
  module_param_named(sev, sev_enabled, bool, 0444)`` in sev.c under ``#ifdef CONFIG_KVM_AMD_SEV``
  (series patches 07, 08, 09). Setup overwrites them with the final result, so sysfs shows what
  KVM decided, not what the user asked.
* ``npt``: ``module_param_named(npt, npt_enabled, bool, 0444)`` since 99840a75454b "KVM: SVM:
  Connect 'npt' module param to KVM's internal 'npt_enabled'" (in 5.12): also overwritten, so it
  reads ``N`` on a CPU without NPT.
* ``nested``: ``static int nested = true; module_param(nested, int, S_IRUGO)`` (svm.c); it gates
  the "Nested Virtualization enabled" line.
* ``nrips``, ``vls``, ``vgif`` (``int``, every modeled kernel), ``lbrv`` and ``tsc_scaling``
  (``int``, f800650a4ed2 and 4c84926e229e, 5.16), ``vnmi`` (``bool``, fa4c027a7956, 6.4): each
  cleared when the CPU lacks the feature (``vls`` also without NPT), so sysfs shows the outcome;
  ``nrips`` gates SEV from 6.6 and ``lbrv`` SEV-ES from 6.10.
* ``sev_snp`` (``bool``, sev.c, 6f627b425378, 6.11): default on; overwritten with the outcome.
* ``ciphertext_hiding_asids`` (``unsigned int``, sev.c, 6c7c620585c6, 6.18): default 0; what
  setup leaves in it is what sysfs shows (0 once SNP is up on firmware without ciphertext hiding).
* ``debug_swap`` (``bool``, sev.c, 6.6 to 6.19): default on in 6.6 and from 6.10, off in 6.8 and
  6.9; forced off unless SEV-ES ended up enabled on a CPU with DEBUG_SWAP and NO_NESTED_DATA_BP.

Other ``kvm_amd`` parameters (avic, pause_filter_*, dump_invalid_vmcb, intercept_smi, ...) are
not modeled.
"""

from __future__ import annotations

from kvmsev.kernel import kconfig
from kvmsev.kernel.kconfig import Kconfig
from kvmsev.kernel.params import ParamDecl, ParamType
from kvmsev.kvm.behaviour import Behaviour, DebugSwap


def declarations(behaviour: Behaviour, config: Kconfig) -> list[ParamDecl]:
    """The parameters this build of ``kvm_amd`` declares, with their compiled-in defaults."""
    decls = [
        ParamDecl("npt", ParamType.BOOL, True),
        ParamDecl("nested", ParamType.INT, 1),
        ParamDecl("nrips", ParamType.INT, 1),
        ParamDecl("vls", ParamType.INT, 1),
        ParamDecl("vgif", ParamType.INT, 1),
    ]
    if behaviour.svm_tsc_lbrv_lines:
        decls += [ParamDecl("lbrv", ParamType.INT, 1), ParamDecl("tsc_scaling", ParamType.INT, 1)]
    if behaviour.svm_vnmi:
        decls.append(ParamDecl("vnmi", ParamType.BOOL, True))
    if behaviour.sev_params_need_kconfig and not config[kconfig.KVM_AMD_SEV]:
        return decls
    # Before 6c2c7bf5803c the default followed the host-SME Kconfig default.
    default = behaviour.sev_params_default_on or config[kconfig.AMD_MEM_ENCRYPT_ACTIVE_BY_DEFAULT]
    kind = ParamType.BOOL if behaviour.bool_sev_params else ParamType.INT
    value: int | bool = default if kind is ParamType.BOOL else int(default)
    decls.append(ParamDecl("sev", kind, value))
    decls.append(ParamDecl("sev_es", kind, value))
    if behaviour.sev_snp:
        decls.append(ParamDecl("sev_snp", ParamType.BOOL, True))
    if behaviour.debug_swap in (DebugSwap.PARAM_ON, DebugSwap.PARAM_OFF):
        decls.append(ParamDecl("debug_swap", ParamType.BOOL, behaviour.debug_swap is DebugSwap.PARAM_ON))
    if behaviour.ciphertext_hiding_param:
        decls.append(ParamDecl("ciphertext_hiding_asids", ParamType.UINT, 0))
    return decls
