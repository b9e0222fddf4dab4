"""Kwil wire layer: dbids, action payloads (v0.9 RLP, v0.10 binary), transaction signing."""

from kwil_sync.kwil.arguments import PayloadError
from kwil_sync.kwil.dbid import dbid
from kwil_sync.kwil.payload import (
    ActionCall,
    decode_action,
    decode_call,
    encode_action,
    encode_call,
)
from kwil_sync.kwil.tx import (
    SignatureError,
    SignedTx,
    build_tx,
    parse_tx,
    recover_sender,
    sign_tx,
    signed_text,
    tx_hash,
)
from kwil_sync.kwil.values import ValueConversionError, convert_arguments
from kwil_sync.kwil.versions import VERSIONS

__all__ = [
    "VERSIONS",
    "ActionCall",
    "PayloadError",
    "SignatureError",
    "SignedTx",
    "ValueConversionError",
    "build_tx",
    "convert_arguments",
    "dbid",
    "decode_action",
    "decode_call",
    "encode_action",
    "encode_call",
    "parse_tx",
    "recover_sender",
    "sign_tx",
    "signed_text",
    "tx_hash",
]
