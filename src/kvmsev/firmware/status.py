"""SEV firmware status codes and command ids.

Values: Linux ``include/uapi/linux/psp-sev.h`` (``enum sev_ret_code``) and the SEV API
specification (AMD pub. 55766), as collected in the project's firmware reference §4.
"""

from __future__ import annotations

import enum


class Status(enum.IntEnum):
    """Firmware status codes as returned in the command response (bits 15:0)."""

    SUCCESS = 0x00
    INVALID_PLATFORM_STATE = 0x01
    INVALID_GUEST_STATE = 0x02
    INVALID_CONFIG = 0x03
    INVALID_LEN = 0x04
    ALREADY_OWNED = 0x05
    INVALID_CERTIFICATE = 0x06
    POLICY_FAILURE = 0x07
    INACTIVE = 0x08
    INVALID_ADDRESS = 0x09
    BAD_SIGNATURE = 0x0A
    BAD_MEASUREMENT = 0x0B
    ASID_OWNED = 0x0C
    INVALID_ASID = 0x0D
    WBINVD_REQUIRED = 0x0E
    DFFLUSH_REQUIRED = 0x0F
    INVALID_GUEST = 0x10
    INVALID_COMMAND = 0x11
    ACTIVE = 0x12
    HWSEV_RET_PLATFORM = 0x13
    HWSEV_RET_UNSAFE = 0x14
    UNSUPPORTED = 0x15
    INVALID_PARAM = 0x16
    RESOURCE_LIMIT = 0x17
    SECURE_DATA_INVALID = 0x18


class Command(enum.IntEnum):
    """Firmware command ids (SEV API §4; Linux ``enum sev_cmd``)."""

    INIT = 0x01
    SHUTDOWN = 0x02
    FACTORY_RESET = 0x03
    PLATFORM_STATUS = 0x04
    PEK_GEN = 0x05
    PEK_CSR = 0x06
    PEK_CERT_IMPORT = 0x07
    PDH_CERT_EXPORT = 0x08
    PDH_GEN = 0x09
    DF_FLUSH = 0x0A
    DOWNLOAD_FIRMWARE = 0x0B
    GET_ID = 0x0C
    DECOMMISSION = 0x20
    ACTIVATE = 0x21
    DEACTIVATE = 0x22
    GUEST_STATUS = 0x23
    LAUNCH_START = 0x30
    LAUNCH_UPDATE_DATA = 0x31
    LAUNCH_UPDATE_VMSA = 0x32
    LAUNCH_MEASURE = 0x33
    LAUNCH_UPDATE_SECRET = 0x34
    LAUNCH_FINISH = 0x35
    ATTESTATION = 0x36
    SEND_START = 0x40
    SEND_UPDATE_DATA = 0x41
    SEND_UPDATE_VMSA = 0x42
    SEND_FINISH = 0x43
    SEND_CANCEL = 0x44
    RECEIVE_START = 0x50
    RECEIVE_UPDATE_DATA = 0x51
    RECEIVE_UPDATE_VMSA = 0x52
    RECEIVE_FINISH = 0x53
    DBG_DECRYPT = 0x60
    DBG_ENCRYPT = 0x61
    SNP_INIT = 0x81
    SNP_DF_FLUSH = 0x84
    SNP_INIT_EX = 0x85
    SNP_DECOMMISSION = 0x90
    SNP_ACTIVATE = 0x91
    SNP_GCTX_CREATE = 0x93
    SNP_LAUNCH_START = 0xA0
    SNP_LAUNCH_UPDATE = 0xA1
    SNP_LAUNCH_FINISH = 0xA2


class PlatformState(enum.IntEnum):
    """The SEV platform's state (firmware reference §1.2)."""

    UNINIT = 0
    INIT = 1
    WORKING = 2
