"""Where every kwil-sync block points in the Prefect UI: its documentation and its logo."""

from __future__ import annotations

from pydantic import HttpUrl

__all__ = ["DOCS_URL", "LOGO_PATH", "LOGO_URL", "docs_url"]

REPOSITORY = "https://github.com/kwil-sync/kwil-sync"
DOCS_URL = HttpUrl(f"{REPOSITORY}#configuration")
# The committed docs/logo.png as GitHub serves it (tests check the file itself: CI has
# no network).
LOGO_PATH = "docs/logo.png"
LOGO_URL = HttpUrl(f"https://raw.githubusercontent.com/kwil-sync/kwil-sync/main/{LOGO_PATH}")


def docs_url(anchor: str) -> HttpUrl:
    """The README section `anchor` (a GitHub heading anchor)."""
    return HttpUrl(f"{REPOSITORY}#{anchor}")
