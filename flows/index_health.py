"""What a run read from several indexes tells people: table rows and one Prefect event.

`kwil-sync.index.gaps` (resource: the (database, target) pair) is emitted when a run
found items some index lacks or an index down; its payload lists the gaps (item_id,
source; at most 500), counts per index, the indexes down and why, and how many 2023
records were proven from their bytes or accepted on the index's word.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from prefect.events import emit_event

from kwil_sync.flows.events import EVENT_PREFIX, pair_resource
from kwil_sync.replay import ReplayReport

__all__ = ["GAPS_PER_EVENT", "emit_index_health", "index_health_rows"]

GAPS_PER_EVENT = 500


def index_health_rows(report: ReplayReport) -> list[dict[str, Any]]:
    """Rows for the run's table artifact: proofs, gaps per index, indexes down."""
    rows: list[dict[str, Any]] = []
    if report.proven_from_bytes:
        rows.append({"what": "2023 records proven from their data item's bytes",
                     "count": report.proven_from_bytes})
    if report.unverified_legacy:
        rows.append({"what": "2023 records accepted unverified (allow_unverified_legacy)",
                     "count": report.unverified_legacy})
    per_source = Counter(gap.source for gap in report.index_gaps)
    rows += [{"what": f"items missing from index {source}", "count": n}
             for source, n in sorted(per_source.items())]
    rows += [{"what": f"index down: {down.source} ({down.reason[:160]})", "count": 0}
             for down in report.sources_down]
    return rows


def emit_index_health(original_dbid: str, target: str, report: ReplayReport) -> bool:
    """Emit `kwil-sync.index.gaps` when the run found gaps or an index down."""
    if not report.index_gaps and not report.sources_down:
        return False
    emit_event(event=f"{EVENT_PREFIX}.index.gaps", resource=pair_resource(original_dbid, target),
               payload={"gaps": [{"item_id": g.item_id, "source": g.source}
                                 for g in report.index_gaps[:GAPS_PER_EVENT]],
                        "gap_count": len(report.index_gaps),
                        "by_source": dict(Counter(g.source for g in report.index_gaps)),
                        "down": [{"source": d.source, "reason": d.reason}
                                 for d in report.sources_down],
                        "proven_from_bytes": report.proven_from_bytes,
                        "unverified_legacy": report.unverified_legacy})
    return True
