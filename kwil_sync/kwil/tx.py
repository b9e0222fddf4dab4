"""Kwil transactions: the signed text, signing, the JSON form, tx hashes, verification.

kwild v0.9 and v0.10 sign the same "concat" text (kwil-db ``txMsgToSignTmplV0``)::

    {desc}\\n\\nPayloadType: {type}\\nPayloadDigest: {sha256(payload)[:20] hex}\\n
    Fee: {fee}\\nNonce: {nonce}\\n\\nKwil Chain ID: {chain_id}\\n

with EIP-191 ``personal_sign`` (signature type ``secp256k1_ep``, 65 bytes r|s|v). Like
kwil-js (ethers ``signMessage``) we emit v = 27/28; kwild accepts 0/1 too, and r and s
do not depend on that choice (RFC 6979 nonces).

The transaction hash kwild returns (``tx_hash``) is sha256 of the serialized transaction:

- v0.9: ``00 01`` + RLP ``[[sig, sig_type], [desc, payload, payload_type, fee, nonce,
  chain_id], serialization, sender]`` (kwil-db ``core/types/transactions``; CometBFT
  hashes the broadcast bytes with sha256);
- v0.10: kwil-db ``core/types/transaction.go`` ``Transaction.MarshalBinary``: u16 LE
  version 0, compact (signed varint) bytes of the signature encoding, of the body
  encoding, compact string of the serialization, compact bytes of the sender.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import struct
from dataclasses import dataclass
from typing import Any

import rlp

from kwil_sync.errors import KwilSyncError
from kwil_sync.ethkeys import EthereumKey, address_from_public_key, recover_personal
from kwil_sync.kwil.versions import V010, V09, VERSIONS

__all__ = [
    "SIGNATURE_TYPE",
    "SERIALIZATION",
    "MAX_DESCRIPTION",
    "SignatureError",
    "SignedTx",
    "payload_digest",
    "signed_text",
    "sign_tx",
    "build_tx",
    "parse_tx",
    "serialize_tx",
    "tx_hash",
    "recover_sender",
]

SIGNATURE_TYPE = "secp256k1_ep"
SERIALIZATION = "concat"
MAX_DESCRIPTION = 200  # kwil-db MsgDescriptionMaxLength (bytes in Go, chars in kwil-js)


class SignatureError(KwilSyncError, ValueError):
    """A transaction whose signature is malformed, of an unknown type, or not the sender's."""


def payload_digest(payload: bytes) -> bytes:
    """The 20-byte PayloadDigest: the first 20 bytes of sha256(payload)."""
    return hashlib.sha256(payload).digest()[:20]


def _fee_str(fee: int | str) -> str:
    if isinstance(fee, bool) or not isinstance(fee, (int, str)):
        raise ValueError(f"fee must be an int or a decimal string, got {fee!r}")
    s = str(fee)
    if not s.isdigit() or not s.isascii() or (len(s) > 1 and s[0] == "0"):
        raise ValueError(f"fee must be a non-negative integer without leading zeros, got {s!r}")
    return s


def _nonce(nonce: int) -> int:
    if isinstance(nonce, bool) or not isinstance(nonce, int) or not 0 <= nonce < (1 << 64):
        raise ValueError(f"nonce must be an unsigned 64-bit int, got {nonce!r}")
    return nonce


def signed_text(
    description: str, payload_type: str, payload: bytes, fee: int | str, nonce: int, chain_id: str
) -> str:
    """The exact text that is personal-signed for a transaction (serialization "concat")."""
    if len(description.encode("utf-8")) > MAX_DESCRIPTION:
        raise ValueError(f"description is longer than {MAX_DESCRIPTION} bytes")
    return (
        f"{description}\n\nPayloadType: {payload_type}\nPayloadDigest: "
        f"{payload_digest(payload).hex()}\nFee: {_fee_str(fee)}\nNonce: {_nonce(nonce)}\n\n"
        f"Kwil Chain ID: {chain_id}\n"
    )


@functools.lru_cache(maxsize=8)
def _signing_key(private_key_hex: str) -> EthereumKey:
    # Deriving the public key and address costs as much as signing: a replay signs
    # thousands of transactions with the same key, so derive it once.
    return EthereumKey(private_key_hex)


def sign_tx(
    private_key_hex: str,
    payload: bytes,
    *,
    description: str,
    fee: int | str,
    nonce: int,
    chain_id: str,
    payload_type: str = "execute",
) -> bytes:
    """Sign a transaction body; returns the 65-byte r|s|v signature with v 27/28."""
    text = signed_text(description, payload_type, payload, fee, nonce, chain_id)
    return _signing_key(private_key_hex).sign_personal(text.encode("utf-8"), v_offset=27)


@dataclass(frozen=True)
class SignedTx:
    """A parsed transaction (the JSON form both kwild versions accept)."""

    signature: bytes
    signature_type: str
    description: str
    payload: bytes
    payload_type: str
    fee: str
    nonce: int
    chain_id: str
    serialization: str
    sender: bytes

    def signed_text(self) -> str:
        return signed_text(
            self.description, self.payload_type, self.payload, self.fee, self.nonce,
            self.chain_id,
        )

    def to_json(self) -> dict:
        """The transaction as kwild's JSON-RPC takes it (bytes base64, sender hex)."""
        return {
            "signature": {"sig": _b64(self.signature), "type": self.signature_type},
            "body": {
                "desc": self.description,
                "payload": _b64(self.payload),
                "type": self.payload_type,
                "fee": self.fee,
                "nonce": self.nonce,
                "chain_id": self.chain_id,
            },
            "serialization": self.serialization,
            "sender": self.sender.hex(),
        }


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def build_tx(
    private_key_hex: str,
    payload: bytes,
    *,
    description: str,
    fee: int | str,
    nonce: int,
    chain_id: str,
    payload_type: str = "execute",
) -> dict:
    """Sign and return the transaction JSON for ``user.broadcast`` (sender: the 20
    address bytes as hex without 0x; payload and signature base64)."""
    key = _signing_key(private_key_hex)
    sig = sign_tx(
        private_key_hex, payload, description=description, fee=fee, nonce=nonce,
        chain_id=chain_id, payload_type=payload_type,
    )
    return SignedTx(
        signature=sig,
        signature_type=SIGNATURE_TYPE,
        description=description,
        payload=bytes(payload),
        payload_type=payload_type,
        fee=_fee_str(fee),
        nonce=_nonce(nonce),
        chain_id=chain_id,
        serialization=SERIALIZATION,
        sender=bytes.fromhex(key.address[2:]),
    ).to_json()


def _unb64(s: Any, what: str) -> bytes:
    if not isinstance(s, str):
        raise ValueError(f"transaction {what} must be a base64 string")
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"transaction {what} is not valid base64") from None


def parse_tx(tx: dict | str | bytes) -> SignedTx:
    """Parse the JSON form of a transaction (a dict or JSON text).

    Raises:
        ValueError: If a field is missing or of the wrong kind.
    """
    if isinstance(tx, (str, bytes)):
        try:
            tx = json.loads(tx)
        except ValueError:
            raise ValueError("transaction is not valid JSON") from None
    if not isinstance(tx, dict):
        raise ValueError("transaction must be a JSON object")
    sig = tx.get("signature") or {}
    body = tx.get("body")
    if not isinstance(sig, dict) or not isinstance(body, dict):
        raise ValueError("transaction needs 'signature' and 'body' objects")
    sender = tx.get("sender", "")
    if not isinstance(sender, str):
        raise ValueError("transaction sender must be a hex string")
    try:
        sender_b = bytes.fromhex(sender.removeprefix("0x"))
    except ValueError:
        raise ValueError("transaction sender is not hex") from None
    nonce = body.get("nonce", 0)
    if isinstance(nonce, str) and nonce.isdigit():
        nonce = int(nonce)
    fee = body.get("fee", "0")
    fee = "0" if fee in ("", None) else fee
    for name in ("desc", "type", "chain_id"):
        if not isinstance(body.get(name, ""), str):
            raise ValueError(f"transaction body {name} must be a string")
    return SignedTx(
        signature=_unb64(sig.get("sig", ""), "signature"),
        signature_type=str(sig.get("type", "")),
        description=body.get("desc", ""),
        payload=_unb64(body.get("payload", ""), "payload"),
        payload_type=body.get("type", ""),
        fee=_fee_str(fee),
        nonce=_nonce(nonce),
        chain_id=body.get("chain_id", ""),
        serialization=str(tx.get("serialization", "")),
        sender=sender_b,
    )


def _as_signed(tx: SignedTx | dict | str | bytes) -> SignedTx:
    return tx if isinstance(tx, SignedTx) else parse_tx(tx)


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _compact_bytes(b: bytes) -> bytes:  # Go binary.AppendVarint (zigzag) length prefix
    return _uvarint(len(b) << 1) + b


def _compact_str(s: str | bytes) -> bytes:  # unsigned varint length prefix
    b = s.encode("utf-8") if isinstance(s, str) else s
    return _uvarint(len(b)) + b


def serialize_tx(tx: SignedTx | dict | str | bytes, version: str) -> bytes:
    """The transaction bytes kwild hashes (and CometBFT / the v0.10 mempool carry)."""
    t = _as_signed(tx)
    if version not in VERSIONS:
        raise ValueError(f"unknown Kwil version {version!r}")
    if version == V09:
        fee = int(t.fee)
        return b"\x00\x01" + rlp.encode([
            [t.signature, t.signature_type.encode()],
            [
                t.description.encode(), t.payload, t.payload_type.encode(),
                fee.to_bytes((fee.bit_length() + 7) // 8, "big"),
                t.nonce.to_bytes((t.nonce.bit_length() + 7) // 8, "big"),
                t.chain_id.encode(),
            ],
            t.serialization.encode(),
            t.sender,
        ], sedes=rlp.sedes.raw)
    assert version == V010
    sig = _compact_str(t.signature) + _compact_str(t.signature_type)
    body = (
        _compact_str(t.description)
        + _compact_bytes(t.payload)
        + _compact_str(t.payload_type)
        + b"\x01" + _compact_str(t.fee)
        + struct.pack("<Q", t.nonce)
        + _compact_str(t.chain_id)
    )
    return (
        struct.pack("<H", 0)
        + _compact_bytes(sig)
        + _compact_bytes(body)
        + _compact_str(t.serialization)
        + _compact_bytes(t.sender)
    )


def tx_hash(tx: SignedTx | dict | str | bytes, version: str) -> str:
    """The 64-char hex ``tx_hash`` kwild returns for this transaction: sha256 of
    :func:`serialize_tx` for that version."""
    return hashlib.sha256(serialize_tx(tx, version)).hexdigest()


def recover_sender(tx: SignedTx | dict | str | bytes) -> str:
    """Verify the signature over the rebuilt signed text; return the EIP-55 sender address.

    Raises:
        SignatureError: Unknown signature type or serialization, a malformed signature,
            or a signature that does not recover to ``sender``.
    """
    try:
        t = _as_signed(tx)
    except ValueError as exc:
        raise SignatureError(f"transaction does not parse: {exc}") from None
    if t.signature_type != SIGNATURE_TYPE:
        raise SignatureError(f"unsupported signature type {t.signature_type!r}")
    if t.serialization != SERIALIZATION:
        raise SignatureError(f"unsupported serialization {t.serialization!r}")
    if len(t.sender) != 20:
        raise SignatureError(f"a {SIGNATURE_TYPE} sender is 20 address bytes, got {len(t.sender)}")
    try:
        text = t.signed_text()
        public = recover_personal(text.encode("utf-8"), t.signature)
    except ValueError as exc:
        raise SignatureError(str(exc)) from None
    address = address_from_public_key(public)
    if address.lower() != "0x" + t.sender.hex():
        raise SignatureError(
            f"signature is by {address}, not by the sender 0x{t.sender.hex()}"
        )
    return address
