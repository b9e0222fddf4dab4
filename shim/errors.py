"""The shim's own refusals (mapped to gRPC status codes in `shim.status`)."""

from __future__ import annotations

from kwil_sync.errors import KwilSyncError

__all__ = ["InvalidRequest", "WrongProvider"]


class InvalidRequest(KwilSyncError, ValueError):
    """A request the shim refuses as malformed (INVALID_ARGUMENT)."""


class WrongProvider(KwilSyncError, RuntimeError):
    """Metadata names a provider other than the key this shim signs with."""
