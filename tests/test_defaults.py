"""The default names in kwil_sync.defaults are the ones prefect.yaml, the flows and the
follow cursor use."""

import importlib
from pathlib import Path

import yaml

from kwil_sync import defaults

ROOT = Path(__file__).resolve().parents[1]


def test_prefect_yaml_declares_exactly_the_default_deployments():
    declared = []
    for deployment in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]:
        module, _, name = deployment["entrypoint"].partition(":")
        flow = getattr(importlib.import_module(module), name)
        declared.append(f"{flow.name}/{deployment['name']}")
    assert sorted(declared) == sorted(defaults.DEPLOYMENTS)


def test_follow_cursor_names_carry_the_prefix_status_looks_for():
    from kwil_sync.cli.status import CURSOR_PREFIX
    from kwil_sync.flows.follow import follow_lock_name

    name = follow_lock_name("x" + "ab" * 28, "x" + "cd" * 28)
    assert name.startswith(CURSOR_PREFIX) and CURSOR_PREFIX.startswith(
        defaults.FOLLOW_CURSOR_PREFIX)
