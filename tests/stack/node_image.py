"""The project's image on the stack's node, for tests whose workloads run as real pods: built
from the last commit and imported into containerd as `make up` does (seconds when nothing
changed), so a test needs the node, not a `make up` before it."""

from __future__ import annotations

from pathlib import Path

from commerce_devstack.kube_shop.image import build_and_import
from commerce_devstack.kube_shop.settings import KubeShopSettings
from commerce_devstack.settings import StackSettings


def project_image(work: Path) -> str:
    """repository:content-tag of the image the node holds; `work` is a folder of the
    caller's own."""
    return build_and_import(StackSettings(), KubeShopSettings().image_repository, work).name
