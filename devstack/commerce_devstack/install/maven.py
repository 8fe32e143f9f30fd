"""Artifacts from Maven Central through the machine's `mvn` (its local repository caches them)."""

from __future__ import annotations

from pathlib import Path

from commerce_devstack.install.commands import run


def copy_dependencies(mvn: str, pom: Path, out_dir: Path, properties: dict[str, str]) -> None:
    """Resolves the runtime classpath declared by `pom` into `out_dir` (one jar per dependency)."""
    defines = [f"-D{key}={value}" for key, value in properties.items()]
    run(
        [
            mvn,
            "-B",
            "-q",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={out_dir}",
            *defines,
        ],
        what=f"resolving jars from {pom.name}",
    )


def copy_artifact(mvn: str, coordinates: str, out_dir: Path) -> Path:
    """Downloads one artifact (group:artifact:version:type[:classifier]) into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    run(
        [
            mvn,
            "-B",
            "-q",
            "dependency:copy",
            f"-Dartifact={coordinates}",
            f"-DoutputDirectory={out_dir}",
            "-Dmdep.useBaseVersion=true",
        ],
        what=f"downloading {coordinates}",
        cwd=out_dir,  # outside any project: the plugin needs none for a single artifact
    )
    _group, artifact, version, kind, *classifier = coordinates.split(":")
    suffix = f"-{classifier[0]}" if classifier else ""
    return out_dir / f"{artifact}-{version}{suffix}.{kind}"
