"""etcd, the control plane, the node's kubelet and kube-proxy, and kubectl, built once from the
Go module proxy.

devstack/go/kube is a wrapper module: k8s.io/kubernetes cannot be `go install`ed because its
go.mod points its staging modules at local folders, so the wrapper pins them to published
versions. etcd comes from the same module graph, at the version kube-apiserver requires.
"""

from __future__ import annotations

from pathlib import Path

from commerce_devstack import versions
from commerce_devstack.install import cache, gobuild
from commerce_devstack.settings import REPO_ROOT, StackSettings

MODULE = REPO_ROOT / "devstack" / "go" / "kube"
PACKAGES = [
    "k8s.io/kubernetes/cmd/kube-apiserver",
    "k8s.io/kubernetes/cmd/kube-controller-manager",
    "k8s.io/kubernetes/cmd/kube-scheduler",
    "k8s.io/kubernetes/cmd/kubelet",
    "k8s.io/kubernetes/cmd/kube-proxy",
    "k8s.io/kubernetes/cmd/kubectl",
    "./cmd/etcd",
]


def _version_ldflags() -> str:
    major, minor = versions.KUBERNETES.lstrip("v").split(".")[:2]
    flags = []
    # Without these the binaries report v0.0.0 and clients warn about version skew.
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={versions.KUBERNETES}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    return " ".join(flags)


def kube_bin_dir(settings: StackSettings) -> Path:
    """Where the binaries are once built (whether or not they are yet)."""
    return settings.cache_dir / f"kube-{versions.KUBERNETES}" / "bin"


def kube_bin(settings: StackSettings, notify: cache.Notify = cache.quiet) -> Path:
    def build(tmp: Path) -> None:
        gobuild.build(settings.go, MODULE, PACKAGES, tmp / "bin", _version_ldflags())

    key = cache.content_key(
        versions.KUBERNETES,
        *PACKAGES,
        MODULE / "go.mod",
        MODULE / "go.sum",
        MODULE / "cmd/etcd/main.go",
    )
    entry = kube_bin_dir(settings).parent
    what = "building etcd and Kubernetes from the Go module proxy (cold: ~15 min)"
    return cache.ensure(entry, key, build, what, notify) / "bin"
