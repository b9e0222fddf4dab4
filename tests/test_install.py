"""The built wheel installs everything under `kwil_sync`: beside proto-plus (whose import
name is `proto`, brought by every google-cloud client), both import, and no top-level
`flows`, `tasks`, `blocks`, `proto`, `deployments` or `shim` of ours is installed."""

from __future__ import annotations

import json
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("flows", "tasks", "blocks", "deployments", "shim")

CHECK = """
import importlib, json, sys
import proto  # proto-plus
import kwil_sync.proto.kwil_sync_pb2_grpc, kwil_sync.flows.restore, kwil_sync.blocks
import kwil_sync.shim.server, kwil_sync.deployments.serve, kwil_sync.tasks.upload
ours = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
        ours[name] = True
    except ImportError:
        ours[name] = False
print(json.dumps({"proto": proto.__file__, "message": hasattr(proto, "Message"),
                  "flows": kwil_sync.flows.restore.__file__, "top_level": ours}))
"""


@pytest.mark.timeout(300)
def test_the_wheel_installs_under_kwil_sync_beside_proto_plus(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path / "dist"), str(ROOT)], check=True, timeout=240)
    [wheel] = (tmp_path / "dist").glob("kwil_sync-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"kwil_sync"}
    fresh = tmp_path / "fresh"
    venv.create(fresh, with_pip=True)
    # The dependencies (prefect, grpcio, proto-plus, ...) come from this venv's
    # site-packages, added as a plain path: its .pth files (our editable install among
    # them) do not run, so kwil_sync can only come from the wheel.
    [lib] = (fresh / "lib").glob("python3*")
    (lib / "site-packages" / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    python = str(fresh / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "--no-deps", "-q", str(wheel)],
                   check=True, timeout=120)
    done = subprocess.run([python, "-c", CHECK, *LAYERS], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert "/proto/" in found["proto"] and found["message"]  # proto-plus's own package
    assert str(fresh) in found["flows"]  # ours from the wheel, not the source tree
    assert not any(found["top_level"].values()), found["top_level"]
