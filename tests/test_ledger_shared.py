"""The ledger's stores: URLs, the run lock across processes, a PostgreSQL server that goes
away, and moving a ledger between stores with its counts checked."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kwil_sync.ledger import (
    ActionResult,
    Ledger,
    LedgerBusy,
    LedgerUnavailable,
    SequenceSlot,
    SignedAction,
    open_ledger,
)
from kwil_sync.ledger_store import PostgresStore, SQLiteStore, open_store, redact_url
from kwil_sync.ledger_transfer import (
    LedgerTransferError,
    export_ledger,
    import_ledger,
    migrate_ledger,
)
from kwil_sync.testing.postgres import PostgresServer
from kwil_sync.testing.stack import PROJECT_ROOT

T = "chain/xtarget"
SENDER = "0x00000000000000000000000000000000000000aa"

HOLDER = """
import sys, time
from kwil_sync.ledger import open_ledger
ledger = open_ledger(sys.argv[1])
with ledger.exclusive(sys.argv[2], timeout=5):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    return str(request.getfixturevalue("postgres_url"))


def fill(ledger: Ledger, target: str = T) -> None:
    """A bit of everything: done, failed, pending (with a prior hash), slots, gaps and a
    quarantined record."""
    ledger.intend_many(target, [SignedAction("a1", "h1", 1, {"hash": "h1"}, "tx1", SENDER, 1),
                                SignedAction("a2", "h2", 2, {"hash": "h2"}, "tx2", SENDER, 2),
                                SignedAction("a3", "h3", 3, {"hash": "h3"}, "tx3", SENDER, 3)])
    ledger.intend(target, "a3", "h3b", 4, signed_tx={"hash": "h3b"})
    ledger.complete_many(target, [ActionResult("a1", 0, "", 5),
                                  ActionResult("a2", 110, "dataset not found", 5)])
    ledger.mark_sequenced(target, [SequenceSlot(SENDER, 1, "a1"), SequenceSlot(SENDER, 2, "a2")])
    ledger.set_gaps(target, {SENDER: 1700000000.5})
    ledger.quarantine(target, "item-x", "untrusted-signer", "forged", provider=SENDER)
    ledger.quarantine(target, "item-x", "untrusted-signer", "forged again", provider=SENDER)


def dump(ledger: Ledger) -> list[str]:
    out = io.StringIO()
    export_ledger(ledger, out)
    return out.getvalue().splitlines()


def test_urls_pick_the_store(tmp_path: Path, postgres_url: str,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    relative = open_store("sqlite:///a.sqlite")  # three slashes: relative, as in SQLAlchemy
    assert isinstance(relative, SQLiteStore) and relative.path == "a.sqlite"
    relative.close()
    assert (tmp_path / "a.sqlite").exists()
    absolute = open_store("sqlite:////" + str(tmp_path / "b.sqlite").lstrip("/"))
    assert isinstance(absolute, SQLiteStore) and absolute.path == str(tmp_path / "b.sqlite")
    absolute.close()
    shared = open_store(postgres_url)
    assert isinstance(shared, PostgresStore)
    shared.close()
    with pytest.raises(ValueError, match="unknown ledger URL scheme 'mysql'"):
        open_store("mysql://root:hunter2@db/ledger")
    assert redact_url("postgresql://u:hunter2@h:5/d") == "postgresql://u:***@h:5/d"


def test_an_unreachable_server_says_so_without_the_password(postgres: PostgresServer) -> None:
    url = f"postgresql://kwil_sync:hunter2@127.0.0.1:{postgres.port + 1}/none"
    with pytest.raises(LedgerUnavailable, match="cannot reach the ledger database") as raised:
        open_ledger(url)
    assert "hunter2" not in str(raised.value)


def test_the_same_rules_hold_on_both_stores(where: str) -> None:
    with open_ledger(where) as ledger:
        fill(ledger)
        counts = ledger.counts(T)
        assert (counts.done, counts.failed, counts.pending, counts.quarantined) == (1, 1, 1, 1)
        assert counts.providers == {SENDER: 2}
        [pending] = ledger.pending(T)
        assert (pending.action_id, pending.tx_hash, pending.prior_hashes) == ("a3", "h3b", ("h3",))
        [entry] = ledger.quarantined(T)
        assert (entry.times, entry.detail) == (2, "forged again")
        assert ledger.has_history(T) and not ledger.has_history("chain/other")
        assert ledger.filter_new(T, ["a9", "a1", "a3"]) == ["a9"]


def test_one_run_per_target_across_processes_and_a_killed_holder_lets_go(where: str) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, where, T], cwd=PROJECT_ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with open_ledger(where) as ledger:
            with pytest.raises(LedgerBusy, match="another run holds"), \
                    ledger.exclusive(T, timeout=0.6):
                pass
            with ledger.exclusive("chain/another-target", timeout=0):
                pass  # other targets are free
            holder.send_signal(signal.SIGKILL)  # no cleanup: the OS/session must let go
            holder.wait(timeout=10)
            with ledger.exclusive(T, timeout=10), open_ledger(where) as second, \
                    pytest.raises(LedgerBusy), second.exclusive(T, timeout=0):
                pass
    finally:
        holder.kill()
        holder.wait()


def test_a_restarted_server_fails_the_call_and_keeps_what_was_committed() -> None:
    with PostgresServer.start() as server:
        url = server.create_database("restart")
        ledger = open_ledger(url)
        ledger.intend(T, "a1", "h1", 1, signed_tx={"hash": "h1"})
        server.restart()
        with pytest.raises(LedgerUnavailable, match="lost the ledger database"):
            ledger.intend(T, "a2", "h2", 2)
        ledger.close()
        with open_ledger(url) as again:
            assert [i.action_id for i in again.pending(T)] == ["a1"]  # a2 was never stored


def test_migrate_sqlite_into_postgresql_moves_every_row(tmp_path: Path,
                                                       postgres_url: str) -> None:
    with open_ledger(tmp_path / "worker.sqlite") as source, open_ledger(postgres_url) as shared:
        fill(source)
        fill(source, "chain/second")
        counts = migrate_ledger(source, shared)
        assert counts == {"actions": 6, "sequenced": 4, "quarantine": 2, "gaps": 2}
        assert dump(shared) == dump(source)
        assert shared.pending(T) == source.pending(T)
        with pytest.raises(LedgerTransferError, match="already holds rows for target"):
            migrate_ledger(source, shared)  # never merged
        assert dump(shared) == dump(source)


def test_a_damaged_export_writes_nothing(tmp_path: Path) -> None:
    with open_ledger(tmp_path / "a.sqlite") as source:
        fill(source)
        lines = dump(source)
    with open_ledger(tmp_path / "b.sqlite") as destination:
        with pytest.raises(LedgerTransferError, match="truncated"):
            import_ledger(destination, lines[:-1])
        forged = [*lines[:-1], json.dumps({"counts": {"actions": 99}})]
        with pytest.raises(LedgerTransferError, match="damaged"):
            import_ledger(destination, forged)
        with pytest.raises(LedgerTransferError, match="not a kwil-sync ledger export"):
            import_ledger(destination, ['{"rows": []}'])
        assert not destination.has_history(T) and destination.targets() == []


def test_the_cli_exports_and_imports(tmp_path: Path, postgres_url: str) -> None:
    with open_ledger(tmp_path / "worker.sqlite") as source:
        fill(source)
        expected = dump(source)
    cli = [sys.executable, "-m", "kwil_sync.cli", "ledger"]
    exported = tmp_path / "ledger.jsonl"
    subprocess.run([*cli, "export", "--ledger", str(tmp_path / "worker.sqlite"), "-o",
                    str(exported)], cwd=PROJECT_ROOT, check=True, capture_output=True)
    done = subprocess.run([*cli, "import", str(exported), "--ledger", postgres_url],
                          cwd=PROJECT_ROOT, check=True, capture_output=True, text=True)
    assert json.loads(done.stdout)["import"]["actions"] == 3
    with open_ledger(postgres_url) as shared:
        assert dump(shared) == expected
