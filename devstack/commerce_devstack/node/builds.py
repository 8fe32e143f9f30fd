"""The node's images, built once into the cache: the pause image every pod sandbox holds,
CoreDNS and the Ingress controller (Skipper) from the Go module proxy, and the Debian base the
project's Dockerfile builds on here (debootstrap from the mirror apt uses)."""

from __future__ import annotations

import json
from pathlib import Path

from commerce_devstack import versions
from commerce_devstack.install import cache, gobuild
from commerce_devstack.install.commands import run
from commerce_devstack.node import images
from commerce_devstack.node.leftovers import unmount_under
from commerce_devstack.settings import REPO_ROOT, StackSettings

GO = REPO_ROOT / "devstack" / "go"
PAUSE_IMAGE = f"localhost/commerce/pause:{versions.PAUSE}"
COREDNS_IMAGE = f"localhost/commerce/coredns:{versions.COREDNS}"
SKIPPER_IMAGE = f"localhost/commerce/skipper:{versions.SKIPPER}"
NONROOT = "65532"


def _kubernetes_source(settings: StackSettings) -> Path:
    """k8s.io/kubernetes in Go's module cache (the pause program is C inside it)."""
    listed = run(
        [settings.go, "mod", "download", "-json", f"k8s.io/kubernetes@{versions.KUBERNETES}"],
        what="locating the Kubernetes module source",
        cwd=GO / "kube",
    )
    return Path(json.loads(listed)["Dir"])


def pause_archive(settings: StackSettings, notify: cache.Notify = cache.quiet) -> Path:
    def build(tmp: Path) -> None:
        source = _kubernetes_source(settings) / "build" / "pause" / "linux" / "pause.c"
        binary = tmp / "pause"
        run(
            [
                "gcc",
                "-Os",
                "-Wall",
                "-Werror",
                "-static",
                "-DVERSION=" + versions.PAUSE,
                "-o",
                str(binary),
                str(source),
            ],
            what="compiling pause",
        )
        images.from_files(settings, PAUSE_IMAGE, {"/pause": binary}, ["/pause"], user="65535")
        images.save(settings, PAUSE_IMAGE, tmp / "image.tar")

    key = cache.content_key(versions.PAUSE, versions.KUBERNETES)
    entry = settings.cache_dir / f"pause-{versions.PAUSE}"
    return cache.ensure(entry, key, build, "building the pause image", notify) / "image.tar"


def _go_image(
    settings: StackSettings,
    module: str,
    package: str,
    image: str,
    version: str,
    notify: cache.Notify,
    what: str,
) -> Path:
    directory = GO / module
    binary = package.rsplit("/", 1)[-1]

    def build(tmp: Path) -> None:
        gobuild.build(settings.go, directory, [package], tmp / "bin")
        images.from_files(settings, image, {f"/{binary}": tmp / "bin" / binary}, [f"/{binary}"])
        images.save(settings, image, tmp / "image.tar")

    key = cache.content_key(version, directory / "go.mod", directory / "go.sum")
    entry = settings.cache_dir / f"{module}-{version}"
    return cache.ensure(entry, key, build, what, notify) / "image.tar"


def coredns_archive(settings: StackSettings, notify: cache.Notify = cache.quiet) -> Path:
    return _go_image(
        settings,
        "coredns",
        "github.com/coredns/coredns",
        COREDNS_IMAGE,
        versions.COREDNS,
        notify,
        "building CoreDNS from the Go module proxy (cold: ~4 min)",
    )


def skipper_archive(settings: StackSettings, notify: cache.Notify = cache.quiet) -> Path:
    return _go_image(
        settings,
        "skipper",
        "github.com/zalando/skipper/cmd/skipper",
        SKIPPER_IMAGE,
        versions.SKIPPER,
        notify,
        "building the Skipper Ingress controller from the Go module proxy (cold: ~5 min)",
    )


def node_archives(settings: StackSettings, notify: cache.Notify = cache.quiet) -> list[Path]:
    """Every image the node's own pods need, as archives for containerd."""
    return [
        pause_archive(settings, notify),
        coredns_archive(settings, notify),
        skipper_archive(settings, notify),
    ]


def base_image(settings: StackSettings, notify: cache.Notify = cache.quiet) -> str:
    """Debian 12 with python3 (3.11, what the project requires) as `python`, in buildah's
    storage: the project's Dockerfile is built FROM it here."""
    if images.exists(settings, images.BASE_IMAGE):
        return images.BASE_IMAGE

    def bootstrap(tmp: Path) -> None:
        rootfs = tmp / "rootfs"
        try:
            run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    "--include=python3,python3-venv",
                    "bookworm",
                    str(rootfs),
                    images.debian_mirror(),
                ],
                what="debootstrap of the Debian base image",
                timeout_s=1800,
            )
        finally:
            unmount_under(rootfs)  # a failed debootstrap leaves the target's /proc mounted
        (rootfs / "usr" / "local" / "bin" / "python").symlink_to("/usr/bin/python3")
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (rootfs / leftover).glob("*"):
                if item.is_file():
                    item.unlink()

    entry = settings.cache_dir / "debian-bookworm-rootfs"
    # A debootstrap killed with its session left /proc mounted in the partial tree, which the
    # cache would otherwise remove file by file through the mount.
    unmount_under(entry.with_name(entry.name + ".partial"))
    rootfs = cache.ensure(
        entry,
        cache.content_key("bookworm", "minbase", "python3,python3-venv"),
        bootstrap,
        "debootstrap of the Debian base image (~1 min)",
        notify,
    )
    notify("importing the Debian base image into buildah")
    images.from_rootfs(
        settings,
        images.BASE_IMAGE,
        rootfs / "rootfs",
        {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
        },
    )
    return images.BASE_IMAGE
