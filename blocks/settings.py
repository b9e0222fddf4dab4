"""Integration settings, read from `PREFECT_INTEGRATIONS_KWIL_SYNC_*` or a Prefect profile."""

from __future__ import annotations

from pathlib import Path

from prefect.settings.base import PrefectBaseSettings, build_settings_config
from pydantic import Field, SecretStr


class KwilSyncSettings(PrefectBaseSettings):
    """Where kwil-sync keeps local state and how it follows the log."""

    model_config = build_settings_config(("integrations", "kwil_sync"))

    state_dir: Path = Field(
        default=Path.home() / ".kwil-sync",
        description="Folder for the ledger and other local state.",
    )
    ledger_url: SecretStr | None = Field(
        default=None,
        description=("The ledger's database, postgresql://... (shared by every worker) or "
                     "sqlite:///path; unset: <state_dir>/ledger.sqlite on this machine."),
    )
    follow_lookback_seconds: int = Field(
        default=600,
        description="How far behind its cursor each follow poll re-reads, for late arrivals.",
    )
    gap_timeout_seconds: float = Field(
        default=300.0,
        description="How long a missing sequence number holds a provider's later records.",
    )

    @property
    def ledger_path(self) -> Path:
        return self.state_dir / "ledger.sqlite"

    @property
    def ledger_location(self) -> str:
        """The configured ledger URL, or the state folder's SQLite file."""
        if self.ledger_url is not None and self.ledger_url.get_secret_value():
            return self.ledger_url.get_secret_value()
        return str(self.ledger_path)
