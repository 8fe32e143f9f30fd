"""Go programs built from a wrapper module in devstack/go, with modules from the Go module proxy."""

from __future__ import annotations

from pathlib import Path

from commerce_devstack.install.commands import run


def build(
    go: str,
    module_dir: Path,
    packages: list[str],
    out_dir: Path,
    ldflags: str = "",
    modfile: Path | None = None,
) -> None:
    """Builds each package into out_dir; Go's module and build caches live outside the repo.
    `modfile`: a go.mod to use instead of the module's own (its go.sum beside it)."""
    run(
        [
            go,
            "build",
            *([f"-modfile={modfile}"] if modfile is not None else []),
            "-trimpath",
            "-buildvcs=false",
            f"-ldflags=-s -w {ldflags}".strip(),
            "-o",
            f"{out_dir}/",
            *packages,
        ],
        what=f"building {', '.join(p.rsplit('/', 1)[-1] for p in packages)}",
        cwd=module_dir,
        env={"CGO_ENABLED": "0"},
    )
