"""ANS-104 signers: Ethereum (type 3) and Arweave RSA-4096 (type 1).

A signer signs the 48-byte deep hash of a data item; `verify_signature` checks one
without trusting anything but the owner bytes carried in the item.
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from Crypto.Hash import SHA256
from Crypto.PublicKey import RSA
from Crypto.Signature import pss
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from kwil_sync.ethkeys import EthereumKey, address_from_public_key, recover_personal

__all__ = [
    "SIGNATURE_TYPES",
    "ArweaveSigner",
    "EthereumSigner",
    "Signer",
    "b64url",
    "b64url_decode",
    "owner_address",
    "verify_signature",
]

# signature type -> (signature length, owner length)
SIGNATURE_TYPES: dict[int, tuple[int, int]] = {1: (512, 512), 3: (65, 65)}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer(Protocol):
    """What a data item needs from a key."""

    signature_type: int
    owner: bytes

    def sign(self, message: bytes) -> bytes: ...


class EthereumSigner:
    """Sign data items with an Ethereum key (ANS-104 type 3), as arbundles does.

    Args:
        private_key_hex: The secp256k1 private key as hex.
    """

    signature_type = 3

    def __init__(self, private_key_hex: str) -> None:
        self.key = EthereumKey(private_key_hex)
        self.owner: bytes = self.key.public_key
        self.address: str = self.key.address

    def __repr__(self) -> str:
        return f"EthereumSigner(address={self.address!r})"

    def sign(self, message: bytes) -> bytes:
        return self.key.sign_personal(message)


class ArweaveSigner:
    """Sign with an Arweave RSA-4096 wallet (ANS-104 type 1), RSA-PSS SHA-256.

    Args:
        jwk: The wallet as a JWK dict (`n`, `e`, `d`, `p`, `q`, ...).
    """

    signature_type = 1

    def __init__(self, jwk: dict[str, Any]) -> None:
        def num(field: str) -> int:
            return int.from_bytes(b64url_decode(jwk[field]), "big")

        try:
            self._key = RSA.construct((num("n"), num("e"), num("d"), num("p"), num("q")))
        except KeyError as exc:
            raise ValueError(f"the Arweave JWK lacks field {exc}") from exc
        self.owner: bytes = b64url_decode(jwk["n"])
        self.address: str = b64url(hashlib.sha256(self.owner).digest())

    @classmethod
    def from_file(cls, path: str | Path) -> ArweaveSigner:
        return cls(json.loads(Path(path).read_text()))

    @classmethod
    def generate(cls, bits: int = 4096) -> ArweaveSigner:
        """A fresh wallet (tests, arlocal)."""
        key = RSA.generate(bits, e=65537)

        def enc(n: int) -> str:
            return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))

        return cls({"kty": "RSA", "n": enc(key.n), "e": enc(key.e), "d": enc(key.d),
                    "p": enc(key.p), "q": enc(key.q)})

    def jwk(self) -> dict[str, str]:
        """The wallet as a JWK dict (handle as a secret)."""
        def enc(n: int) -> str:
            return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))

        k = self._key
        return {"kty": "RSA", "e": enc(k.e), "n": enc(k.n), "d": enc(k.d), "p": enc(k.p),
                "q": enc(k.q), "dp": enc(k.d % (k.p - 1)), "dq": enc(k.d % (k.q - 1)),
                "qi": enc(pow(k.q, -1, k.p))}

    def __repr__(self) -> str:
        return f"ArweaveSigner(address={self.address!r})"

    def sign(self, message: bytes) -> bytes:
        return pss.new(self._key, salt_bytes=32).sign(SHA256.new(message))


@lru_cache(maxsize=256)
def _rsa_public_key(owner: bytes) -> rsa.RSAPublicKey | None:
    """The RSA key an owner field holds (e = 65537), built once per signer: receipts and
    2023 records come from a handful of keys, and building one costs more than a check."""
    try:
        return rsa.RSAPublicNumbers(65537, int.from_bytes(owner, "big")).public_key()
    except ValueError:  # not a usable modulus: hostile bytes, not a crash
        return None


def _rsa_verify(owner: bytes, message: bytes, signature: bytes) -> bool:
    key = _rsa_public_key(owner)
    if key is None:
        return False
    for salt in (32, len(owner) - 32 - 2):  # arweave-js signs with 32; node's max is 478
        try:
            key.verify(signature, message,
                       padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt),
                       hashes.SHA256())
            return True
        except (InvalidSignature, ValueError):
            continue
    return False


def verify_signature(signature_type: int, owner: bytes, message: bytes, signature: bytes) -> bool:
    """True when `signature` over `message` was made by the key `owner` holds."""
    if signature_type == 3:
        try:
            return recover_personal(message, signature) == owner
        except ValueError:
            return False
    if signature_type == 1:
        return _rsa_verify(owner, message, signature)
    return False


def owner_address(signature_type: int, owner: bytes) -> str:
    """The signer's native address: 0x EIP-55 for Ethereum, base64url(sha256(n)) for RSA."""
    if signature_type == 3:
        return address_from_public_key(owner)
    return b64url(hashlib.sha256(owner).digest())
