"""Regenerate the committed protobuf and gRPC modules from proto/*.proto.

Run `make proto` (or `python -m kwil_sync.proto.generate`) after editing a .proto file and commit
the results. tests/test_proto.py regenerates into a temporary folder and fails when the
committed modules differ, so a stale module never ships.

This folder installs as the package `kwil_sync.proto`, so the .proto files are compiled
under that virtual path: the generated gRPC modules import their messages as
`from kwil_sync.proto import x_pb2`, and a `proto` package of another project (proto-plus,
which every google-cloud client brings) is never shadowed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

__all__ = ["PROTO_DIR", "generate", "generated_names", "main"]

PROTO_DIR = Path(__file__).resolve().parent
ROOT = PROTO_DIR.parent
PROTO_FILES = ("extension.proto", "dbsync.proto", "kwil_sync.proto")
VIRTUAL = "kwil_sync/proto"  # the import path the modules are generated for


def generated_names() -> list[str]:
    """File names generate() writes into `<out>/proto/`, one set per .proto file."""
    names: list[str] = []
    for proto in PROTO_FILES:
        stem = proto.removesuffix(".proto")
        names += [f"{stem}_pb2.py", f"{stem}_pb2.pyi", f"{stem}_pb2_grpc.py"]
    return names


def generate(out_root: Path = ROOT) -> list[Path]:
    """Compile every .proto file into `<out_root>/proto/`.

    Args:
        out_root: The folder that plays the repository root; the modules land in its
            `proto/` subfolder (created when missing).

    Returns:
        The paths written.

    Raises:
        RuntimeError: If protoc reports an error (its message is on stderr).
    """
    (out_root / "proto").mkdir(parents=True, exist_ok=True)
    well_known = resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory() as work:
        args = [
            "grpc_tools.protoc",
            f"-I{VIRTUAL}={PROTO_DIR}",
            f"-I{well_known}",
            f"--python_out={work}",
            f"--pyi_out={work}",
            f"--grpc_python_out={work}",
            *(f"{VIRTUAL}/{name}" for name in PROTO_FILES),
        ]
        code = protoc.main(args)
        if code != 0:
            raise RuntimeError(f"protoc failed with exit code {code}; see its message above")
        for name in generated_names():
            shutil.move(Path(work) / VIRTUAL / name, out_root / "proto" / name)
    return [out_root / "proto" / name for name in generated_names()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kwil_sync.proto.generate",
        description="Regenerate proto/*_pb2.py, *_pb2.pyi and *_pb2_grpc.py from proto/*.proto.",
    )
    parser.add_argument("--out", type=Path, default=ROOT,
                        help="folder playing the repository root (default: the repository)")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
