"""The helm CLI, built once from the Go module proxy (devstack/go/helm pins its version), to
render the operator's chart and dry-run it against the stack's API server."""

from __future__ import annotations

from pathlib import Path

from commerce_devstack import versions
from commerce_devstack.install import cache, gobuild
from commerce_devstack.settings import REPO_ROOT, StackSettings

MODULE = REPO_ROOT / "devstack" / "go" / "helm"


def helm_path(settings: StackSettings) -> Path:
    """Where the binary is once built (whether or not it is yet)."""
    return settings.cache_dir / f"helm-{versions.HELM}" / "bin" / "helm"


def helm_bin(settings: StackSettings, notify: cache.Notify = cache.quiet) -> Path:
    def build(tmp: Path) -> None:
        gobuild.build(
            settings.go,
            MODULE,
            ["helm.sh/helm/v3/cmd/helm"],
            tmp / "bin",
            f"-X helm.sh/helm/v3/internal/version.version={versions.HELM}",
        )

    key = cache.content_key(versions.HELM, MODULE / "go.mod", MODULE / "go.sum")
    entry = helm_path(settings).parent.parent
    what = "building helm from the Go module proxy (cold: ~3 min)"
    return cache.ensure(entry, key, build, what, notify) / "bin" / "helm"
