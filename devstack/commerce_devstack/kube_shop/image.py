"""The project's image: `Dockerfile` built by buildah on the Debian base (node/builds.py),
tagged as the samples and the chart name it, and imported into the node's containerd.

The build reaches PyPI with the host's pip settings and CA bundle, mounted for the RUN steps
only (never part of the image). With buildah's layer cache, a rebuild after a source change
reinstalls the project in about a minute and a rebuild without one takes seconds; an image
containerd already holds is not imported again.
"""

from __future__ import annotations

from pathlib import Path

from commerce_devstack.components.containerd import ctr, import_archive
from commerce_devstack.install import cache
from commerce_devstack.node import builds, images
from commerce_devstack.settings import REPO_ROOT, StackSettings

# Read by pip in the build when present on the host: its settings and the CA it trusts.
_HOST_PIP_FILES = (Path("/etc/pip.conf"), Path("/etc/ssl/certs/ca-certificates.crt"))


def _image_id(settings: StackSettings, image: str) -> str:
    return images.buildah(
        settings, "inspect", "--type=image", "--format={{.FromImageID}}", image, what="inspect"
    ).strip()


def build_and_import(
    settings: StackSettings, image: str, state: Path, notify: cache.Notify = cache.quiet
) -> str:
    """Builds `image` (e.g. commerce-platform:0.1.0) and makes containerd hold it; returns
    what it did."""
    base = builds.base_image(settings, notify)
    notify(f"buildah bud -t {image} (base {base})")
    images.build_dockerfile(
        settings,
        REPO_ROOT,
        image,
        {"BASE": base},
        [f"{path}:{path}:ro" for path in _HOST_PIP_FILES if path.exists()],
    )
    built = _image_id(settings, image)
    stamp = state / "imported-image"
    wanted = f"{image} {built}"
    present = ctr(settings, "images", "list", "--quiet", what="ctr images").split()
    normalized = image if "/" in image.split(":")[0] else f"docker.io/library/{image}"
    if stamp.exists() and stamp.read_text() == wanted and normalized in present:
        return f"{image} unchanged ({built[:12]})"
    archive = images.save(settings, image, state / "image.tar")
    import_archive(settings, archive)
    archive.unlink()
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(wanted)
    return f"{image} built and imported ({built[:12]})"
