"""Container images built on this machine with buildah (no registry is ever pulled from), kept
as docker-archive files that containerd imports.

buildah runs with `--isolation chroot` (crun, its OCI default, refuses cgroup v1 hybrid mode)
and a storage folder of ours in the cache, so `--layers` makes a rebuild after a source change
take seconds. It still writes a blob-info cache and a CNI lock file on the host: each call
removes what it created there.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from commerce_devstack.install.commands import SetupError, run
from commerce_devstack.settings import StackSettings

# Written by buildah whatever its storage settings say.
_HOST_LEFTOVERS = (Path("/var/lib/containers"), Path("/etc/cni"))
BASE_IMAGE = "localhost/commerce/debian-python:bookworm"


def storage_dir(settings: StackSettings) -> Path:
    return settings.cache_dir / "buildah"


def _env(settings: StackSettings) -> dict[str, str]:
    storage = storage_dir(settings)
    conf = storage / "storage.conf"
    if not conf.exists():
        storage.mkdir(parents=True, exist_ok=True)
        conf.write_text(
            "[storage]\n"
            'driver = "overlay"\n'
            f'graphroot = "{storage / "graph"}"\n'
            f'runroot = "{storage / "run"}"\n'
        )
    return {"CONTAINERS_STORAGE_CONF": str(conf), "BUILDAH_ISOLATION": "chroot"}


@contextmanager
def _no_host_leftovers() -> Iterator[None]:
    created = [p for p in _HOST_LEFTOVERS if not p.exists()]
    try:
        yield
    finally:
        for path in created:
            shutil.rmtree(path, ignore_errors=True)


def buildah(settings: StackSettings, *args: str, what: str, timeout_s: float = 1800) -> str:
    with _no_host_leftovers():
        return run(["buildah", *args], what=what, env=_env(settings), timeout_s=timeout_s)


def save(settings: StackSettings, image: str, archive: Path) -> Path:
    """Writes `image` as a docker-archive that `ctr images import` reads, named `image`."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.unlink(missing_ok=True)
    buildah(settings, "push", image, f"docker-archive:{archive}:{image}", what=f"saving {image}")
    return archive


def from_files(
    settings: StackSettings,
    image: str,
    files: dict[str, Path],
    entrypoint: Sequence[str],
    user: str = "65532",
) -> None:
    """An image holding nothing but `files` (path in the image -> file here), for static
    binaries: the pause process, CoreDNS, the Ingress controller."""
    container = buildah(settings, "from", "scratch", what="buildah from scratch").strip()
    try:
        for target, source in files.items():
            buildah(settings, "copy", container, str(source), target, what=f"copying {target}")
        buildah(
            settings,
            "config",
            f"--entrypoint={_json_list(entrypoint)}",
            f"--user={user}",
            container,
            what=f"configuring {image}",
        )
        buildah(settings, "commit", "--rm", container, image, what=f"committing {image}")
    except Exception:
        buildah(settings, "rm", container, what="removing a failed build")
        raise


def from_rootfs(settings: StackSettings, image: str, rootfs: Path, env: dict[str, str]) -> None:
    """An image from a root filesystem folder (the debootstrap base), without its device
    nodes and kernel folders: the runtime provides those."""
    container = buildah(settings, "from", "scratch", what="buildah from scratch").strip()
    try:
        mounted = buildah(settings, "mount", container, what="mounting the new image").strip()
        with _no_host_leftovers():
            run(
                [
                    "bash",
                    "-o",
                    "pipefail",
                    "-c",
                    'tar -C "$1" --exclude=./dev/* --exclude=./proc/* --exclude=./sys/* -cf - . '
                    '| tar -C "$2" -xf -',
                    "copy",
                    str(rootfs),
                    mounted,
                ],
                what=f"copying {rootfs} into the image",
            )
        buildah(settings, "umount", container, what="unmounting the new image")
        buildah(
            settings,
            "config",
            *(f"--env={key}={value}" for key, value in env.items()),
            "--cmd=/bin/bash",
            container,
            what=f"configuring {image}",
        )
        buildah(settings, "commit", "--rm", container, image, what=f"committing {image}")
    except Exception:
        buildah(settings, "rm", container, what="removing a failed build")
        raise


def exists(settings: StackSettings, image: str) -> bool:
    listed = buildah(settings, "images", "--format={{.Name}}:{{.Tag}}", what="listing images")
    return image in listed.split()


def build_dockerfile(
    settings: StackSettings,
    context: Path,
    build_args: dict[str, str],
    volumes: Sequence[str] = (),
) -> str:
    """`buildah bud` of context/Dockerfile with layer caching; returns the image's ID.
    `volumes` are bind mounts seen by RUN steps only (never part of the image). The same
    context and base give the same ID again (every layer comes from the cache)."""
    iidfile = context.with_name(context.name + ".iid")
    buildah(
        settings,
        "bud",
        "--isolation=chroot",
        "--pull=never",
        "--layers",
        "--format=docker",
        f"--iidfile={iidfile}",
        *(f"--build-arg={key}={value}" for key, value in build_args.items()),
        *(f"--volume={volume}" for volume in volumes),
        str(context),
        what=f"building {context / 'Dockerfile'}",
        timeout_s=3600,
    )
    image_id = iidfile.read_text().strip().removeprefix("sha256:")
    iidfile.unlink()
    return image_id


def tag(settings: StackSettings, image_id: str, name: str) -> None:
    buildah(settings, "tag", image_id, name, what=f"tagging {name}")


def _json_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


def debian_mirror() -> str:
    """The Debian mirror apt uses here: debootstrap fetches the base image's packages there."""
    for source in [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]:
        if not source.exists():
            continue
        for line in source.read_text().splitlines():
            words = line.split()
            if words[:1] == ["URIs:"] and len(words) > 1 and "security" not in words[1]:
                return words[1]
            if words[:1] == ["deb"] and len(words) > 2 and "security" not in words[-2]:
                return next(w for w in words[1:] if "://" in w)
    raise SetupError("finding the Debian mirror", "no deb source in /etc/apt (apt is needed)")
