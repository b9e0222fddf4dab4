"""The house rules: the core (`kwil_sync`) never imports Prefect, and no layer but the
command line (and the testing helpers, which start it) imports the shim server's package
(its client lives in the core)."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_kwil_sync_never_imports_prefect():
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in (ROOT / "kwil_sync").rglob("*.py") if p.name != "__main__.py")
    assert len(modules) > 40
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'prefect')\n"
            "print(loaded[:5])\n"
            "sys.exit(1 if loaded else 0)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_only_the_command_line_imports_the_shim_server():
    importers = []
    for folder in ("kwil_sync", "blocks", "tasks", "flows", "deployments"):
        for path in (ROOT / folder).rglob("*.py"):
            # `kwil-sync shim` runs it; the testing helpers start it as a test would
            if "cli" in path.parts or "testing" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                if any(n in ("shim", "kwil_sync.shim") or n.startswith(("shim.", "kwil_sync.shim."))
                       for n in names):
                    importers.append(str(path.relative_to(ROOT)))
    assert importers == []


def test_the_shim_server_never_loads_prefect_blocks():
    # blocks build shim clients; the command line reads blocks for the shim
    importers = []
    for path in (ROOT / "shim").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    ("kwil_sync.blocks", "blocks")):
                importers.append(str(path.relative_to(ROOT)))
    assert importers == []
