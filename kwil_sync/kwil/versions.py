"""The kwild versions this package speaks, named once: v0.9 (RLP payloads) and v0.10."""

from __future__ import annotations

__all__ = ["V09", "V010", "VERSIONS"]

V09 = "v0.9"
V010 = "v0.10"
VERSIONS = (V09, V010)
