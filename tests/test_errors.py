"""One error root: every exception class the project defines derives from KwilSyncError,
so `except KwilSyncError` catches anything kwil-sync raises on purpose."""

import importlib
import inspect
from pathlib import Path

from kwil_sync.errors import KwilSyncError

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("flows", "tasks", "blocks", "shim", "deployments", "cli")


def _modules() -> list[str]:
    names = []
    for path in sorted(ROOT.glob("kwil_sync/**/*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[1] in LAYERS + ("proto",) or parts[-1] == "__main__":
            continue
        names.append(".".join(parts).removesuffix(".__init__"))
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] != "__main__":
                names.append(".".join(("kwil_sync",) + parts).removesuffix(".__init__"))
    return names


def test_every_project_exception_derives_from_kwil_sync_error():
    modules = _modules()
    assert len(modules) > 80
    strays = []
    for name in modules:
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (cls.__module__ == name and issubclass(cls, BaseException)
                    and not issubclass(cls, KwilSyncError)):
                strays.append(f"{name}.{cls.__qualname__}")
    assert strays == []


def test_builtin_bases_are_kept_for_callers_that_catch_them():
    from kwil_sync.kwil.arguments import PayloadError
    from kwil_sync.ledger_store import LedgerUnavailable
    from kwil_sync.records import RecordError

    assert issubclass(RecordError, ValueError) and issubclass(PayloadError, ValueError)
    assert issubclass(LedgerUnavailable, RuntimeError)
