"""Stack configuration: every port, folder and size is overridable by COMMERCE_STACK_* env vars."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# devstack/commerce_devstack/settings.py -> repository root
REPO_ROOT = Path(__file__).resolve().parents[2]


Port = Annotated[int, Field(ge=1, le=65535)]


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "commerce-stack"


class StackSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COMMERCE_STACK_", frozen=True)

    state_dir: Path = Field(default=REPO_ROOT / ".stack", description="data, logs, pid files")
    cache_dir: Path = Field(default_factory=_default_cache_dir, description="downloads and builds")
    # Loopback: etcd and the control plane's own health ports, which no pod may reach.
    host: str = "127.0.0.1"
    # The node's address on its pod bridge (cni0): the servers pods use (MariaDB, Kafka,
    # Connect, Elasticsearch, FerretDB, the API server) listen here, and the host reaches them
    # here too. A loopback address here runs the servers without a node (no bridge, no pods).
    node_address: str = "10.244.0.1"
    node_name: str = "commerce-node"

    mariadb_port: Port = 3306
    kafka_port: Port = 9092
    kafka_controller_port: Port = 9093
    connect_port: Port = 8083
    elasticsearch_port: Port = 9200
    elasticsearch_transport_port: Port = 9300
    ferretdb_port: Port = 27017
    etcd_port: Port = 2379
    etcd_peer_port: Port = 2380
    apiserver_port: Port = 6443
    controller_manager_port: Port = 10257
    scheduler_port: Port = 10259
    kubelet_port: Port = 10250
    kubelet_healthz_port: Port = 10248
    kube_proxy_healthz_port: Port = 10256
    kube_proxy_metrics_port: Port = 10249
    # The Ingress controller's public address is http://<host>:<ingress_port> (loopback).
    ingress_port: Port = 8080
    ingress_support_port: Port = 9911

    kafka_heap: str = "512m"
    connect_heap: str = "512m"
    elasticsearch_heap: str = "768m"

    java: str = Field(default="java", description="Java 17+ executable for Kafka, Connect, ES")
    go: str = "go"
    mvn: str = "mvn"

    start_timeout_s: float = 240.0
    stop_timeout_s: float = 30.0

    @property
    def node_enabled(self) -> bool:
        """Whether this stack runs the Kubernetes node (a non-loopback node address)."""
        return not ipaddress.ip_address(self.node_address).is_loopback

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def endpoints_file(self) -> Path:
        return self.state_dir / "endpoints.json"

    @property
    def secrets_file(self) -> Path:
        return self.state_dir / "secrets.json"

    def data_dir(self, component: str) -> Path:
        return self.state_dir / component
