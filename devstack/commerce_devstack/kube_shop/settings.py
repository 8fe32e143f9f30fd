"""Where `make up` finds the samples and how long it waits, from COMMERCE_SHOP_* env vars."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from commerce_devstack.settings import REPO_ROOT, Port


class KubeShopSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COMMERCE_SHOP_", frozen=True)

    namespace: str = "shop"
    samples_dir: Path = REPO_ROOT / "samples"
    crds_dir: Path = REPO_ROOT / "crds"
    ready_timeout_s: float = Field(default=300.0, gt=0)
    # The operator's own endpoints, away from the services' usual 8080/8081.
    operator_metrics_port: Port = 8180
    operator_health_port: Port = 8181
    # The shop's public address: the development runtime serves samples/' Ingress here.
    ingress_port: Port = 8080
    # How often the operator re-reads every resource (drift repair, a Secret appearing).
    resync_seconds: float = Field(default=10.0, gt=0)

    @property
    def secret_templates(self) -> Path:
        return self.samples_dir / "secrets" / "secrets.template.yaml"

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.ingress_port}"
