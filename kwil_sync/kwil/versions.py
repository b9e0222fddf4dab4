"""The kwild versions this package speaks, named once: v0.9 (RLP payloads) and v0.10.

Compare and pass versions with these names rather than the literals. They are plain
strings, not an enum, so a version read from a block, a CLI flag or the node compares
equal to them and prints as itself.
"""

from __future__ import annotations

__all__ = ["V09", "V010", "VERSIONS"]

V09 = "v0.9"
V010 = "v0.10"
VERSIONS = (V09, V010)
