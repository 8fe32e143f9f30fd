"""One module per server of the stack; ALL lists them in start order."""

from __future__ import annotations

from commerce_devstack.components.apiserver import KubeApiServer
from commerce_devstack.components.base import Component
from commerce_devstack.components.cluster_addons import ClusterAddons
from commerce_devstack.components.connect import KafkaConnect
from commerce_devstack.components.containerd import Containerd
from commerce_devstack.components.controller_manager import KubeControllerManager
from commerce_devstack.components.elasticsearch import Elasticsearch
from commerce_devstack.components.etcd import Etcd
from commerce_devstack.components.ferretdb import FerretDB
from commerce_devstack.components.kafka import Kafka
from commerce_devstack.components.kube_proxy import KubeProxy
from commerce_devstack.components.kubelet import Kubelet
from commerce_devstack.components.mariadb import MariaDB
from commerce_devstack.components.scheduler import KubeScheduler

ALL: tuple[type[Component], ...] = (
    MariaDB,
    Kafka,
    KafkaConnect,
    Elasticsearch,
    FerretDB,
    Etcd,
    KubeApiServer,
    KubeControllerManager,
    KubeScheduler,
    Containerd,
    Kubelet,
    KubeProxy,
    ClusterAddons,
)
