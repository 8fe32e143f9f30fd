"""Where `make up` finds the samples, the chart and the image, and how long it waits, from
COMMERCE_SHOP_* env vars."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from commerce_devstack.settings import REPO_ROOT

CHART_DIR = REPO_ROOT / "charts" / "commerce-operator"


class KubeShopSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COMMERCE_SHOP_", frozen=True)

    namespace: str = "shop"
    samples_dir: Path = REPO_ROOT / "samples"
    crds_dir: Path = REPO_ROOT / "crds"
    chart_dir: Path = CHART_DIR
    # The operator's Helm release and its namespace, as a platform team would install it.
    release: str = "commerce-operator"
    operator_namespace: str = "commerce-system"
    # The repository of the image the samples and the chart name; `make up` builds it from
    # Dockerfile, tags it by content and sets that tag in both.
    image_repository: str = "commerce-platform"
    ready_timeout_s: float = Field(default=600.0, gt=0)

    @property
    def secret_templates(self) -> Path:
        return self.samples_dir / "secrets" / "secrets.template.yaml"
