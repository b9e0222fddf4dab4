"""The root of every exception kwil-sync defines.

Catch `KwilSyncError` to catch anything the project raises on purpose. Classes keep a
built-in base beside it (`ValueError` for bad input, `RuntimeError` for a service or
state failure, `LookupError` for an unknown name) where callers rely on it, as httpx's
exceptions do.
"""

from __future__ import annotations

__all__ = ["KwilSyncError"]


class KwilSyncError(Exception):
    """Base class of every kwil-sync exception."""
