"""Chaos: kwil-sync keeps working and loses nothing when the services around it fail.

The scenarios are `kwil_sync.testing.chaos_scenarios`, the same bench/chaos.py runs at a
larger scale: each writes honest records of its own database, breaks something on the
way (seeded faults on every HTTP hop, kwild down, the bundler asking for payment, the
upload process killed, two follow polls at once, a provider key rotated), then counts on
the target's own chain (or the bundler's index) that every action executed exactly once
(`duplicates`, `missing` and `unexpected` 0) and that the rows are the expected ones.
Each test prints its figures as one JSON line (`pytest -s`) and records them as
properties.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kwil_sync.testing import chaos_scenarios as scenarios
from kwil_sync.testing.arlocal import Arlocal
from kwil_sync.testing.chaos import ChaosWorld


@pytest.fixture
def world(tmp_path: Path, arlocal: Arlocal) -> ChaosWorld:
    return ChaosWorld(tmp_path, arlocal, dict(os.environ))


@pytest.fixture
def flows_world(tmp_path: Path, arlocal: Arlocal, shared_prefect: str) -> ChaosWorld:
    """A world whose processes reach the session's Prefect server."""
    return ChaosWorld(tmp_path, arlocal, {**os.environ, "PREFECT_API_URL": shared_prefect})


def report_figures(record_property: Callable[[str, object], None], scenario: str,
                   figures: dict[str, Any]) -> None:
    """Print one JSON line of figures, keep them as test properties, and check the
    exactly-once counts every scenario shares."""
    print(json.dumps({"scenario": scenario, **figures}, sort_keys=True, default=str))
    for name, value in figures.items():
        record_property(name, value)
    assert (figures["duplicates"], figures["missing"], figures["unexpected"]) == (0, 0, 0)
    assert figures["records_applied"] == figures["records_expected"]
    assert figures.get("rows_match", True)


@pytest.mark.arlocal
@pytest.mark.timeout(240)
def test_upload_restore_and_follow_through_twenty_percent_faults_on_every_hop(
        world: ChaosWorld, record_property: Callable[[str, object], None]) -> None:
    figures = scenarios.faults_every_hop(world, 60, rate=0.2, page_size=50)
    report_figures(record_property, "faults-every-hop", figures)
    assert figures["records_expected"] == 90 and figures["bundler_items"] == 90
    assert figures["bundler_repeats"] == 0  # each id stored once
    assert all(figures[f"faults_{hop}"] > 0 for hop in ("bundler", "gateway", "kwil"))
    assert figures["restore_completed"] and figures["follow_completed"]
    assert figures["quarantined"] == 0


@pytest.mark.arlocal
@pytest.mark.parametrize("outage_s", [2.0, 20.0], ids=["short", "long"])
def test_kwild_down_mid_restore_then_a_rerun_completes(
        world: ChaosWorld, outage_s: float,
        record_property: Callable[[str, object], None]) -> None:
    figures = scenarios.kwild_outage(world, 120, outage_s=outage_s, page_size=40)
    report_figures(record_property, f"kwild-down-{outage_s:g}s", figures)
    assert figures["struck"] and figures["completed"]
    assert (figures["failed_runs"] == {}) == (outage_s < 5)  # a short outage is waited out
    if figures["failed_runs"]:  # the long one stopped mid-batch, transactions in flight
        pending = figures["pending_at_first_failure"]
        assert 40 <= figures["done_at_first_failure"] < 120 and pending > 0
        recovery = figures["recovery"]  # each pending intent completed or released
        assert recovery["completed"] + recovery["failed"] + recovery["released"] == pending


@pytest.mark.arlocal
def test_a_rotated_provider_key_applies_only_once_trusted(
        world: ChaosWorld, record_property: Callable[[str, object], None]) -> None:
    figures = scenarios.key_rotation(world, 30)
    report_figures(record_property, "key-rotation", figures)
    assert (figures["applied_before_trust"], figures["quarantined_before_trust"]) == (30, 30)
    assert (figures["applied_after_trust"], figures["already_applied_after_trust"],
            figures["known_after_trust"]) == (30, 0, 30)
    # the new key's 10 later records are refused once it is taken off the list; the 30
    # applied while it was trusted are resolved in the ledger and not read again
    assert (figures["applied_after_revoke"], figures["quarantined_after_revoke"],
            figures["known_after_revoke"]) == (0, 10, 60)


@pytest.mark.prefect
def test_the_bundler_asks_for_payment_for_a_while_and_uploads_wait(
        flows_world: ChaosWorld, record_property: Callable[[str, object], None]) -> None:
    # longer than one upload attempt waits (4 tries, Retry-After 2 s)
    figures = scenarios.bundler_402(flows_world, 120, window_s=10.0, batch_size=50)
    report_figures(record_property, "bundler-402", figures)
    assert figures["payment_required_answers"] > 0 and figures["remaining"] == 0
    assert (figures["outbox_pending"], figures["outbox_uploaded"]) == (0, 120)


@pytest.mark.prefect
def test_the_upload_process_killed_mid_batch_then_reruns_upload_the_rest_once(
        flows_world: ChaosWorld, record_property: Callable[[str, object], None]) -> None:
    figures = scenarios.upload_killed(flows_world, 200, batch_size=40, lease_s=6)
    report_figures(record_property, "upload-killed", figures)
    assert 40 < figures["held_at_kill"] < 200
    assert 0 < figures["left_for_the_lease"] <= 40  # the killed batch, waiting for its lease
    assert figures["after_lease_remaining"] == 0
    assert figures["after_lease_already_there"] > 0  # re-posted: the same ids, once each
    assert (figures["outbox_pending"], figures["outbox_uploaded"]) == (0, 200)


@pytest.mark.arlocal
@pytest.mark.prefect
def test_two_follow_polls_at_once_apply_everything_once(
        flows_world: ChaosWorld, record_property: Callable[[str, object], None]) -> None:
    figures = scenarios.two_follows(flows_world, 100, lock_timeout_s=3)
    report_figures(record_property, "two-follows", figures)
    polls = figures["polls"]
    assert all("failed" not in p for p in polls), polls
    applied = sorted(p["applied"] or 0 for p in polls)
    assert applied[-1] == 100  # one poll applied everything
    # the other met the lock and skipped, or ran after it and found nothing new
    other = min(polls, key=lambda p: p["applied"] or 0)
    assert other["skipped"] or (other["applied"], other["already_applied"]) == (0, 0)


@pytest.mark.prefect
def test_first_polls_creating_the_follow_limit_together_do_not_fail(shared_prefect: str) -> None:
    """The limit's upsert is read-then-create: first polls started together race on it."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from kwil_sync.flows.follow import _ensure_limit

    name = f"kwil-sync-follow-race-{time.time_ns()}"
    start, errors = threading.Barrier(8), []

    def first_poll() -> None:
        start.wait()
        try:  # settings are per thread (context variables): name the server again
            with temporary_settings({PREFECT_API_URL: shared_prefect}):
                _ensure_limit(name)
        except Exception as exc:  # noqa: BLE001 (collected and asserted below)
            errors.append(repr(exc))

    threads = [threading.Thread(target=first_poll) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(name).limit == 1
