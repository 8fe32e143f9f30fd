"""The project's image: `Dockerfile` of the last commit (build_context.py) built by buildah on
the Debian base (node/builds.py), tagged by its content and imported into the node's containerd.

The tag is the image ID's first 12 hex digits: a new tag whenever what is in the image changes,
the same tag when it does not (buildah's layer cache gives the same ID for the same context and
base). So a pod restarted later still gets the image its Deployment names, and a commit that
changes nothing in the image rolls no pod.

The build reaches PyPI with the host's pip settings and CA bundle, mounted for the RUN steps
only (never part of the image). With the layer cache (the dependencies are a layer of their
own), a rebuild after a code change takes about 16 s and one without a change about 8 s; an
image containerd already holds is not imported again.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from commerce_devstack.components.containerd import containerd_name, ctr, holds, import_archive
from commerce_devstack.install import cache
from commerce_devstack.kube_shop import build_context
from commerce_devstack.node import builds, images
from commerce_devstack.settings import REPO_ROOT, StackSettings

# Read by pip in the build when present on the host: its settings and the CA it trusts.
_HOST_PIP_FILES = (Path("/etc/pip.conf"), Path("/etc/ssl/certs/ca-certificates.crt"))
TAG_LENGTH = 12


@dataclass(frozen=True)
class ProjectImage:
    name: str  # repository:tag, as the chart values and the CommerceServices name it
    image_id: str
    commit: str  # what it was built from
    imported: bool  # False when containerd already held it


def pip_settings() -> list[str]:
    """buildah volumes: the host's pip settings and CA, which pip in the build reads."""
    return [f"{path}:{path}:ro" for path in _HOST_PIP_FILES if path.exists()]


def content_tag(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:TAG_LENGTH]


def ensure_imported(settings: StackSettings, name: str, work: Path) -> bool:
    """Makes containerd hold `name` from buildah's storage; False if it already did (a tag
    derived from the content names the same image wherever it is)."""
    if holds(settings, name):
        return False
    archive = images.save(settings, name, work / "image.tar")
    try:
        import_archive(settings, archive)
    finally:
        archive.unlink(missing_ok=True)
    return True


def build_and_import(
    settings: StackSettings,
    repository: str,
    work: Path,
    notify: cache.Notify = cache.quiet,
    repo: Path = REPO_ROOT,
) -> ProjectImage:
    """Builds `repository:<content tag>` from the last commit of `repo` and makes containerd
    hold it."""
    base = builds.base_image(settings, notify)
    context = work / "build-context"
    commit = build_context.export(repo, context)
    notify(f"buildah bud of commit {commit[:12]} (base {base})")
    try:
        image_id = images.build_dockerfile(settings, context, {"BASE": base}, pip_settings())
    finally:
        shutil.rmtree(context, ignore_errors=True)
    name = f"{repository}:{content_tag(image_id)}"
    images.tag(settings, image_id, name)
    return ProjectImage(name, image_id, commit, ensure_imported(settings, name, work))


def tag_of(name: str, repository: str) -> str | None:
    """The tag of `name` when it is `repository` (bare, or as buildah or containerd spell
    it), else None."""
    base, _, tag = name.rpartition(":")
    spellings = {repository, f"localhost/{repository}", containerd_name(repository)}
    return tag if base in spellings else None


def prune(settings: StackSettings, repository: str, in_use: list[str]) -> list[str]:
    """Removes the images of `repository` that no name in `in_use` (the current image, those
    the pods run) names, from containerd and from buildah's storage with the build layers only
    they used; returns the tags removed. Every `make up` after a code change makes a new tag:
    without this, each would stay on disk."""
    keep = {tag for name in in_use if (tag := tag_of(name, repository))}
    listed = ctr(settings, "images", "list", "--quiet", what="ctr images").split()
    old = {tag for name in listed if (tag := tag_of(name, repository)) and tag not in keep}
    for tag in sorted(old):
        refs = [n for n in listed if tag_of(n, repository) == tag or n.startswith(f"sha256:{tag}")]
        ctr(settings, "images", "rm", *refs, what=f"removing {repository}:{tag} from containerd")
    names = images.buildah(
        settings, "images", "--format={{.Name}}:{{.Tag}}", what="listing images"
    ).split()
    stale = [n for n in names if (tag := tag_of(n, repository)) and tag not in keep]
    if stale:
        images.buildah(settings, "rmi", *stale, what="removing old images from buildah")
    images.buildah(settings, "rmi", "--prune", what="removing unused build layers")
    return sorted(old | {tag for n in stale if (tag := tag_of(n, repository))})
