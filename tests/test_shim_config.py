"""`kwil-sync shim` / `python -m kwil_sync.shim` options: documented, keys from files,
never shown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kwil_sync.shim.config import KEY_ENV, build_parser, config_from_args

ROOT = Path(__file__).parents[1]
KEY = "33" * 32


def test_help_documents_every_option() -> None:
    out = subprocess.run([sys.executable, "-m", "kwil_sync.shim", "--help"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    flat = " ".join(out.split())
    for action in build_parser()._actions:
        assert action.help, f"{action.option_strings} has no help"
        for option in action.option_strings:
            assert option in out
        first_words = " ".join(action.help.split()[:3])
        assert first_words in flat.replace("- ", "-")


def test_a_missing_key_is_a_clear_error(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "kwil_sync.shim", "--outbox", str(tmp_path / "o")],
                         cwd=ROOT, capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 2
    assert "no provider key" in run.stderr and "Traceback" not in run.stderr


def test_flags_and_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    key_file = tmp_path / "key"
    key_file.write_text(f"{KEY}\n")
    args = build_parser().parse_args([
        "--key-file", str(key_file), "--port", "6000", "--advertise", "shim.internal:6000",
        "--kwil-url", "http://127.0.0.1:1", "--kwil-version", "v0.10", "--batch-size", "7",
        "--restore-parameter", "node=kwil-sync-target", "--restore-parameter", "x=a=b",
        "--answer", "action-id", "--no-submit"])
    config = config_from_args(args)
    assert config.provider_key.get_secret_value() == KEY
    assert (config.port, config.address, config.kwil_version, config.batch_size) == (
        6000, "shim.internal:6000", "v0.10", 7)
    assert config.restore_parameters == {"node": "kwil-sync-target", "x": "a=b"}
    assert (config.answer_with, config.submit) == ("action-id", False)
    assert KEY not in repr(config) and KEY not in str(config.model_dump())


def test_the_key_may_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    config = config_from_args(build_parser().parse_args([]))
    assert config.provider_key.get_secret_value() == KEY
    assert config.address == "127.0.0.1:50051"
    with pytest.raises(ValueError, match="KEY=VALUE"):
        config_from_args(build_parser().parse_args(["--restore-parameter", "novalue"]))
