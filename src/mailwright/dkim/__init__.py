"""DKIM signing and verification (RFC 6376, RFC 8463 Ed25519, RFC 8301 crypto updates).

The MTA calls :func:`sign_message` with keys from :func:`load_signing_key`; inbound
checking calls :func:`verify_message`.  Key files and DNS records come from
:func:`generate_key` and :func:`write_key_files`.
"""

from .keys import (
    KeyFileExistsError,
    KeyRecord,
    KeyRecordError,
    SigningKey,
    dns_record_value,
    generate_key,
    key_size_warning,
    load_private_key,
    load_signing_key,
    parse_key_record,
    private_key_pem,
    txt_strings,
    write_key_files,
    zone_lines,
)
from .signer import DEFAULT_SIGNED_HEADERS, DkimSignError, sign_message
from .verifier import DEFAULT_MAX_SIGNATURES, DkimResult, DkimStatus, verify_message

__all__ = [
    "DEFAULT_MAX_SIGNATURES",
    "DEFAULT_SIGNED_HEADERS",
    "DkimResult",
    "DkimSignError",
    "DkimStatus",
    "KeyFileExistsError",
    "KeyRecord",
    "KeyRecordError",
    "SigningKey",
    "dns_record_value",
    "generate_key",
    "key_size_warning",
    "load_private_key",
    "load_signing_key",
    "parse_key_record",
    "private_key_pem",
    "sign_message",
    "txt_strings",
    "verify_message",
    "write_key_files",
    "zone_lines",
]
