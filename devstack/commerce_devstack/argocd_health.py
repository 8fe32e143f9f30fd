"""The harness that runs Argo CD resource health scripts under the Lua VM Argo CD embeds
(gopher-lua, Lua 5.1 semantics, only the package, base and table libraries), built once from
devstack/go/argocd-health with modules from the Go module proxy. It reads one
{"script", "obj"} JSON object per line and answers {"status", "message"} or {"error"}."""

from __future__ import annotations

from pathlib import Path

from commerce_devstack.install import cache, gobuild
from commerce_devstack.settings import REPO_ROOT, StackSettings

MODULE = REPO_ROOT / "devstack" / "go" / "argocd-health"


def harness(settings: StackSettings, notify: cache.Notify = cache.quiet) -> Path:
    def build(tmp: Path) -> None:
        gobuild.build(settings.go, MODULE, ["."], tmp / "bin")

    key = cache.content_key(MODULE / "go.mod", MODULE / "go.sum", MODULE / "main.go")
    entry = settings.cache_dir / "argocd-health"
    what = "building the Argo CD health-script harness (gopher-lua)"
    return cache.ensure(entry, key, build, what, notify) / "bin" / "argocd-health"
