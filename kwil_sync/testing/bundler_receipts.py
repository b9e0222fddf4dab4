"""The bundler stand-in's receipt signatures, made with OpenSSL.

Every accepted upload gets a receipt signed RSA-PSS (SHA-256, 32-byte salt) with the
stand-in's Arweave wallet, as an Irys node signs with its own. pycryptodome, which
signs everything else here, took about 7 ms of CPU per 4096-bit signature on the
development machine, 85% of the stand-in's cost per item, and the stand-in shares the
cores with the client it serves in tests and `bench/shim.py`. OpenSSL (through
`cryptography`, installed as a Prefect dependency) makes the same signature in about
1.6 ms. Verification is unchanged: any RSA-PSS verifier accepts these signatures
(`kwil_sync.arweave.uploaders.verify_irys_receipt` checks them with pycryptodome).
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from kwil_sync.arweave.signers import ArweaveSigner, b64url_decode

__all__ = ["ReceiptSigner"]

_SALT_BYTES = 32  # what arweave-js and `ArweaveSigner.sign` use


class ReceiptSigner:
    """Sign messages with an Arweave wallet's RSA key through OpenSSL.

    Args:
        wallet: The stand-in's wallet; its key is copied into OpenSSL once.
    """

    def __init__(self, wallet: ArweaveSigner) -> None:
        jwk = wallet.jwk()

        def num(field: str) -> int:
            return int.from_bytes(b64url_decode(jwk[field]), "big")

        public = rsa.RSAPublicNumbers(num("e"), num("n"))
        self._key = rsa.RSAPrivateNumbers(num("p"), num("q"), num("d"), num("dp"), num("dq"),
                                          num("qi"), public).private_key()
        self._padding = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=_SALT_BYTES)
        self.owner = wallet.owner

    def __repr__(self) -> str:  # never show the key
        return f"ReceiptSigner(owner={len(self.owner) * 8} bits)"

    def sign(self, message: bytes) -> bytes:
        """RSA-PSS SHA-256 signature of `message`, as `ArweaveSigner.sign` makes it."""
        return self._key.sign(message, self._padding, hashes.SHA256())
