"""An earlier commit's code, for a benchmark's baseline measured in the same run as this
checkout: the named folders as `git archive` gives them, kept under the stack's cache (the next
run reuses them), with its gRPC stubs generated from its own protos/ when it has services/."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def commit_of(revision: str) -> str:
    return subprocess.run(
        ["git", "rev-parse", "--verify", f"{revision}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def earlier_checkout(commit: str, folders: Sequence[str], cache: Path) -> Path:
    """`folders` of `commit` under `cache`/baselines/<commit>-<folders>."""
    target = cache / "baselines" / f"{commit}-{'-'.join(folders)}"
    if target.exists():
        return target
    partial = target.with_suffix(".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", commit, *folders], cwd=ROOT, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(partial, filter="data")
    if "services" in folders and "protos" in folders:
        # As the Makefile generates them (the stubs are built, never committed).
        subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                "-Icommerce_services/rpc=protos",
                "--python_out=services",
                "--grpc_python_out=services",
                *(str(p.relative_to(partial)) for p in (partial / "protos").rglob("*.proto")),
            ],
            cwd=partial,
            check=True,
        )
    partial.rename(target)
    return target
