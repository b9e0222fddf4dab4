"""Ethereum keys: EIP-191 personal signatures and address recovery.

One place for secp256k1 so that data items, Kwil transactions and record
signatures all sign and verify the same way. Signing uses coincurve (libsecp256k1);
the EIP-191 digest is keccak-256 straight from pycryptodome: eth-account's
`defunct_hash_message` gives the same bytes (tested) through layers of argument
checks that cost more than the hash, twice per record read.
"""

from __future__ import annotations

import functools

from coincurve import PrivateKey, PublicKey
from Crypto.Hash import keccak as _keccak
from eth_utils import to_checksum_address

__all__ = ["EthereumKey", "address_from_public_key", "keccak", "personal_digest",
           "recover_personal"]


def keccak(data: bytes) -> bytes:
    """Keccak-256 (Ethereum's hash, not NIST SHA3-256)."""
    return _keccak.new(digest_bits=256, data=data).digest()


def personal_digest(message: bytes) -> bytes:
    """The EIP-191 (version 0x45) digest that `personal_sign` signs."""
    return keccak(b"\x19Ethereum Signed Message:\n%d%b" % (len(message), message))


@functools.lru_cache(maxsize=4096)  # the same few keys sign every record of a log
def address_from_public_key(public_key: bytes) -> str:
    """The EIP-55 address of an uncompressed (65-byte) or compressed public key."""
    if len(public_key) != 65:
        public_key = PublicKey(public_key).format(compressed=False)
    return to_checksum_address(keccak(public_key[1:])[-20:])


def recover_personal(message: bytes, signature: bytes) -> bytes:
    """Recover the uncompressed public key that personal-signed `message`.

    Args:
        message: The signed message (before the EIP-191 prefix).
        signature: 65 bytes r|s|v with v in {0, 1, 27, 28}.

    Raises:
        ValueError: If the signature is malformed or does not recover.
    """
    if len(signature) != 65:
        raise ValueError(f"an Ethereum signature has 65 bytes, got {len(signature)}")
    v = signature[64]
    if v >= 27:
        v -= 27
    if v not in (0, 1):
        raise ValueError(f"signature recovery id must be 0, 1, 27 or 28, got {signature[64]}")
    try:
        key = PublicKey.from_signature_and_message(
            signature[:64] + bytes([v]), personal_digest(message), hasher=None
        )
    except Exception as exc:  # coincurve raises a bare Exception on bad points
        raise ValueError(f"signature does not recover a public key: {exc}") from exc
    return key.format(compressed=False)


class EthereumKey:
    """A secp256k1 private key that signs as `personal_sign` does.

    Args:
        private_key_hex: 32-byte private key as hex, with or without `0x`.
    """

    def __init__(self, private_key_hex: str) -> None:
        raw = bytes.fromhex(private_key_hex.removeprefix("0x"))
        if len(raw) != 32:
            raise ValueError("an Ethereum private key has 32 bytes (64 hex digits)")
        self._key = PrivateKey(raw)
        self.public_key: bytes = self._key.public_key.format(compressed=False)
        self.address: str = address_from_public_key(self.public_key)

    def __repr__(self) -> str:  # never show the secret
        return f"EthereumKey(address={self.address!r})"

    def sign_digest(self, digest: bytes) -> bytes:
        """Sign a 32-byte digest; returns r|s|v with v in {0, 1}."""
        return self._key.sign_recoverable(digest, hasher=None)

    def sign_personal(self, message: bytes, *, v_offset: int = 27) -> bytes:
        """EIP-191 personal_sign of `message`; returns r|s|v with v = recid + v_offset."""
        sig = self.sign_digest(personal_digest(message))
        return sig[:64] + bytes([sig[64] + v_offset])
