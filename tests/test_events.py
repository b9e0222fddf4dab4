"""Prefect events and automations, on a real Prefect server: a follow poll over honest
records and one forged record emits applied, quarantined and polled events tied to its
flow run; `kwil-sync automations create` makes automations that fire on the quarantine
and on a pair whose follow polls stop."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from helpers_records import (
    Call,
    Provider,
    messages_calls,
    messages_schema,
    put_on_arlocal,
    session_stack,
    sign_chain,
    wait_indexed,
)

from kwil_sync.ethkeys import EthereumKey
from kwil_sync.testing.arlocal import Arlocal
from kwil_sync.testing.procs import wait_until
from kwil_sync.testing.stack import PROJECT_ROOT, LocalStack, standin_call

ORIGINAL = Provider("91" * 32)
STRANGER = Provider("92" * 32)
TARGET_KEY = "93" * 32
AUTHOR = EthereumKey("94" * 32).address
HONEST = 6


@dataclass
class World:
    stack: LocalStack
    target: str
    report: dict[str, Any]
    automations: dict[str, str]


@pytest.fixture(scope="module")
def world(request: pytest.FixtureRequest, arlocal: Arlocal) -> Iterator[World]:
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from pydantic import SecretStr

    from kwil_sync.blocks.arweave import ArweaveGateway
    from kwil_sync.blocks.kwil import KwilNode
    from kwil_sync.flows.follow import follow

    forged = sign_chain(STRANGER, [Call("post_message_sync", [
        ("$id", "999"), ("$body", "forged"), ("$author", AUTHOR), ("$created_at", "1")])],
        original_dbid=ORIGINAL.dbid)
    put_on_arlocal(arlocal, sign_chain(ORIGINAL, messages_calls(HONEST, AUTHOR, seed=9))
                   + forged)
    wait_indexed(arlocal.url, ORIGINAL.dbid, HONEST + 1)
    stack = session_stack(request)
    assert stack.prefect_api_url is not None
    node = stack.start_kwil_node("events-node", chain_id="events-chain")
    target = str(standin_call(node, "deploy", owner=EthereumKey(TARGET_KEY).address,
                              name="messages", schema=messages_schema())["target"])
    env = {**stack.env(), "PREFECT_API_URL": stack.prefect_api_url}
    done = subprocess.run([sys.executable, "-m", "kwil_sync.cli", "automations", "create",
                           "--stall-minutes", "0.25"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    with temporary_settings({PREFECT_API_URL: stack.prefect_api_url}):
        KwilNode(rpc_url=node, version="v0.9", chain_id="events-chain",
                 private_key=SecretStr(TARGET_KEY)).save("events-node", overwrite=True)
        ArweaveGateway(graphql_url=f"{arlocal.url}/graphql", dialect="gateway",
                       data_url=arlocal.url).save("events-arlocal", overwrite=True)
        report = follow(ORIGINAL.dbid, target, node="events-node", gateway="events-arlocal",
                        ledger_path=str(stack.root / "events-ledger.sqlite"))
    yield World(stack, target, report, json.loads(done.stdout))


def events(world: World, prefix: str, count: int = 1) -> list[dict[str, Any]]:
    """Wait until the server holds at least `count` events named `prefix*`; return them."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from kwil_sync.flows.events import read_events

    found: list[dict[str, Any]] = []

    def enough() -> bool:
        nonlocal found
        with temporary_settings({PREFECT_API_URL: world.stack.prefect_api_url}):
            found = read_events(prefix)
        return len(found) >= count

    wait_until(enough, timeout=90, what=f"{count} {prefix} event(s)", interval=0.5)
    return found


def of_pair(world: World, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in found if e["resource"]["prefect.resource.id"]
            == f"kwil-sync.pair.{ORIGINAL.dbid}.{world.target}"]


def test_a_poll_emits_applied_quarantined_and_polled_events_tied_to_its_run(
        world: World) -> None:
    assert world.report["applied"] == HONEST
    applied = of_pair(world, events(world, "kwil-sync.records.applied"))
    assert sum(e["payload"]["applied"] for e in applied) == HONEST
    [quarantined] = of_pair(world, events(world, "kwil-sync.record.quarantined"))
    assert quarantined["payload"]["reason"] == "untrusted-signer"
    [run] = [r for r in quarantined["related"] if r["prefect.resource.role"] == "flow-run"]
    # Prefect ties it to the follow's flow run, whose name is short and readable
    assert run["prefect.resource.name"] == f"follow {ORIGINAL.dbid[1:9]} -> {world.target[1:9]}"
    [polled] = of_pair(world, events(world, "kwil-sync.follow.polled"))
    assert polled["payload"]["records_behind"] == 0 and polled["payload"]["applied"] == HONEST


def test_the_quarantine_and_the_stalled_follow_fire_their_automations(world: World) -> None:
    from kwil_sync.flows.automations import QUARANTINE_AUTOMATION, STALL_AUTOMATION

    fired = {}

    def triggered() -> bool:
        for event in events(world, "prefect.automation.triggered"):
            fired[event["resource"]["prefect.resource.id"]] = event
        return all(f"prefect.automation.{world.automations[name]}" in fired
                   for name in (QUARANTINE_AUTOMATION, STALL_AUTOMATION))

    # the stall: no second poll within 15 s of the first
    wait_until(triggered, timeout=120, what="both automations to fire", interval=1)


def test_status_shows_each_pairs_last_poll_from_the_events(world: World) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from kwil_sync.cli.status import collect_status

    events(world, "kwil-sync.follow.polled")
    with temporary_settings({PREFECT_API_URL: world.stack.prefect_api_url}):
        status = collect_status(ledger=str(world.stack.root / "events-ledger.sqlite"))
    [poll] = [p for p in status["polls"] if p["target"] == world.target]
    assert (poll["database"], poll["records_behind"], poll["applied"]) == \
        (ORIGINAL.dbid, 0, HONEST)
    assert poll["polled_at"] and poll["lag_seconds"] == 0.0
