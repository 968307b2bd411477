"""``KVM_MEMORY_ENCRYPT_OP``: the dispatcher (``svm_mem_enc_op``, sev.c 5.12/5.13).

Order: KVM's SEV off -> -ENOTTY; NULL argument -> 0; copy-in fault -> -EFAULT; take
``kvm->lock``; a mirror VM (5.13) -> -EINVAL for every command (from 5b92b6ca92b6 all but
LAUNCH_UPDATE_VMSA, GUEST_STATUS and DBG_*), without copy-back; ES_INIT with
SEV-ES off -> -ENOTTY without copy-back; unknown or unimplemented id (SEND/RECEIVE_UPDATE_VMSA,
CERT_EXPORT; and before 5.13 every migration command) -> -EINVAL without copy-back; otherwise the
handler runs and the whole ``kvm_sev_cmd`` is copied back, so ``error`` carries the firmware
status even on failure.

The handlers live with their family: :mod:`kvmsev.kvm.launch`, :mod:`kvmsev.kvm.debug`,
:mod:`kvmsev.kvm.migration`; regions in :mod:`kvmsev.kvm.regions`, mirrors in
:mod:`kvmsev.kvm.mirror`.
"""

from __future__ import annotations

from collections.abc import Callable

from kvmsev.kvm import launch, migration, snp
from kvmsev.kvm.debug import sev_dbg_crypt
from kvmsev.kvm.env import KernelEnv
from kvmsev.kvm.guest import Vm
from kvmsev.kvm.mirror import cmd_allowed_from_mirror, is_mirroring_enc_context
from kvmsev.kvm.sev import svm_sev_enabled
from kvmsev.kvm.sev_cmd import EINVAL, ENOTTY, EPERM, Cmd, IoctlResult, SevCmd
from kvmsev.kvm.state import KvmAmd

Handler = Callable[[KernelEnv, KvmAmd, Vm, Cmd], int]

HANDLERS: dict[SevCmd, Handler] = {
    SevCmd.INIT: launch.sev_guest_init,
    SevCmd.ES_INIT: launch.sev_guest_init,
    SevCmd.LAUNCH_START: launch.sev_launch_start,
    SevCmd.LAUNCH_UPDATE_DATA: launch.sev_launch_update_data,
    SevCmd.LAUNCH_UPDATE_VMSA: launch.sev_launch_update_vmsa,
    SevCmd.LAUNCH_SECRET: launch.sev_launch_secret,
    SevCmd.LAUNCH_MEASURE: launch.sev_launch_measure,
    SevCmd.LAUNCH_FINISH: launch.sev_launch_finish,
    SevCmd.GUEST_STATUS: launch.sev_guest_status,
    SevCmd.DBG_DECRYPT: lambda env, kvm, vm, cmd: sev_dbg_crypt(env, kvm, vm, cmd, False),
    SevCmd.DBG_ENCRYPT: lambda env, kvm, vm, cmd: sev_dbg_crypt(env, kvm, vm, cmd, True),
    SevCmd.GET_ATTESTATION_REPORT: launch.sev_get_attestation_report,
}

#: dispatched only with the migration commands (5.13)
MIGRATION_HANDLERS: dict[SevCmd, Handler] = {
    SevCmd.SEND_START: migration.sev_send_start,
    SevCmd.SEND_UPDATE_DATA: migration.sev_send_update_data,
    SevCmd.SEND_FINISH: migration.sev_send_finish,
    SevCmd.SEND_CANCEL: migration.sev_send_cancel,
    SevCmd.RECEIVE_START: migration.sev_receive_start,
    SevCmd.RECEIVE_UPDATE_DATA: migration.sev_receive_update_data,
    SevCmd.RECEIVE_FINISH: migration.sev_receive_finish,
}


#: dispatched with SEV-SNP (6.11)
SNP_HANDLERS: dict[SevCmd, Handler] = {
    SevCmd.SNP_LAUNCH_START: snp.snp_launch_start,
    SevCmd.SNP_LAUNCH_UPDATE: snp.snp_launch_update,
    SevCmd.SNP_LAUNCH_FINISH: snp.snp_launch_finish,
}


def handler(env: KernelEnv, cmd_id: int) -> Handler | None:
    """The handler this kernel dispatches ``cmd_id`` to, or None (-EINVAL)."""
    if cmd_id not in SevCmd._value2member_map_:
        return None
    which = SevCmd(cmd_id)
    if env.behaviour.migration_commands and which in MIGRATION_HANDLERS:
        return MIGRATION_HANDLERS[which]
    if which is SevCmd.INIT2:
        return launch.sev_guest_init2 if env.behaviour.vm_types else None
    if which is SevCmd.SNP_ENABLE_REQ_CERTS:
        return snp.snp_enable_certs if env.behaviour.snp_req_certs else None
    if which in SNP_HANDLERS:
        return SNP_HANDLERS[which] if env.behaviour.sev_snp else None
    return HANDLERS.get(which)


def mem_enc_op(env: KernelEnv, kvm: KvmAmd, vm: Vm, cmd: Cmd) -> IoctlResult:
    """``svm_mem_enc_op``: the dispatcher, in its check order."""
    if env.behaviour.gates_on_sev_enabled:
        enabled = kvm.sev_enabled
    else:
        enabled = svm_sev_enabled(env, kvm) and kvm.sev_enabled
    if not enabled:
        return IoctlResult(ENOTTY)
    if is_mirroring_enc_context(vm) and not cmd_allowed_from_mirror(env.behaviour, cmd.id):
        return IoctlResult(EINVAL)
    if snp.is_snp_guest(vm) and cmd.id < SevCmd.SNP_LAUNCH_START:
        return IoctlResult(EPERM)  # only SNP commands once INIT2 made it an SNP guest
    if cmd.id == SevCmd.ES_INIT and not kvm.sev_es_enabled:
        return IoctlResult(ENOTTY)
    run = handler(env, cmd.id)
    if run is None:
        return IoctlResult(EINVAL)
    ret = run(env, kvm, vm, cmd)
    return IoctlResult(ret, cmd.error, cmd.params)
