"""containerd (Debian's, with runc) as the node's container runtime: its own config, root,
state and sockets in the state folder, the pod network from Debian's CNI plugins on the
bridge cni0, and the node's images imported at start (nothing can be pulled)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from commerce_devstack.components.base import Component, ProbeError
from commerce_devstack.install import debian
from commerce_devstack.install.commands import SetupError, run
from commerce_devstack.node import builds
from commerce_devstack.node.leftovers import kill_pods, unmount_under
from commerce_devstack.node.network import (
    BRIDGE,
    CLUSTER_CIDR,
    EXTRA_SERVICE_CIDR,
    POD_CIDR,
    SERVICE_CIDR,
)
from commerce_devstack.process import LaunchSpec
from commerce_devstack.settings import StackSettings

NAMESPACE = "k8s.io"  # where the CRI plugin keeps the kubelet's images and containers
CNI_BIN = Path("/usr/lib/cni")
PACKAGES = [
    "containerd",
    "runc",
    "containernetworking-plugins",
    "buildah",
    "debootstrap",
    "iptables",
    "conntrack",
]


def containerd_dir(settings: StackSettings) -> Path:
    return settings.data_dir("containerd")


def socket_path(settings: StackSettings) -> Path:
    return containerd_dir(settings) / "containerd.sock"


def ctr(settings: StackSettings, *args: str, what: str, timeout_s: float = 600) -> str:
    return run(
        ["ctr", f"--address={socket_path(settings)}", f"--namespace={NAMESPACE}", *args],
        what=what,
        timeout_s=timeout_s,
    )


def _cni_config(settings: StackSettings) -> dict[str, Any]:
    gateway = settings.node_address
    return {
        "cniVersion": "1.0.0",
        "name": "commerce",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,  # nothing leaves the node, so nothing to masquerade
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR, "gateway": gateway}]],
                    # Only the cluster's ranges: anything else is unreachable from a pod.
                    "routes": [
                        {"dst": cidr} for cidr in (CLUSTER_CIDR, SERVICE_CIDR, EXTRA_SERVICE_CIDR)
                    ],
                    "dataDir": str(settings.data_dir("node") / "cni-ipam"),
                },
            }
        ],
    }


class Containerd(Component):
    name = "containerd"

    def ports(self) -> dict[str, int]:
        return {}  # unix sockets only; CRI streaming picks a free loopback port

    @property
    def address(self) -> str:
        return f"unix://{socket_path(self.settings)}"

    @property
    def _config(self) -> Path:
        return containerd_dir(self.settings) / "config.toml"

    @property
    def cni_conf_dir(self) -> Path:
        return self.settings.data_dir("node") / "cni"

    def install(self) -> None:
        self.notify("checking Debian's containerd, runc, CNI plugins, buildah")
        for package in PACKAGES:
            binary = {"containernetworking-plugins": "/usr/lib/cni/bridge"}.get(package, package)
            debian.ensure_packages(binary, [package])
        debian.ensure_packages("gcc", ["gcc", "libc6-dev"])
        builds.node_archives(self.settings, self.notify)
        builds.base_image(self.settings, self.notify)  # what the project's image builds on

    def prepare(self) -> None:
        for problem in self.after_stop():  # what a killed run left: pods, shims, mounts
            raise SetupError("clearing what an earlier node left", problem)
        base = containerd_dir(self.settings)
        for folder in ("root", "state", "opt"):
            (base / folder).mkdir(parents=True, exist_ok=True)
        self.cni_conf_dir.mkdir(parents=True, exist_ok=True)
        (self.cni_conf_dir / "10-commerce.conflist").write_text(
            json.dumps(_cni_config(self.settings), indent=2)
        )
        sock = socket_path(self.settings)
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        self._config.write_text(
            f"""version = 2
root = "{base / "root"}"
state = "{base / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{base / "opt"}"

[{cri}]
  sandbox_image = "{builds.PAUSE_IMAGE}"
  # No CAP_SYS_RESOURCE in a VM like ours: never lower a container's OOM score below ours.
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = false
  [{cri}.cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{self.cni_conf_dir}"
    max_conf_num = 1
"""
        )

    def launch(self) -> LaunchSpec:
        return LaunchSpec(["containerd", f"--config={self._config}"])

    def probe(self) -> str:
        try:
            version = ctr(self.settings, "version", what="ctr version", timeout_s=5)
        except SetupError as exc:
            raise ProbeError(exc.output.strip()[-300:]) from exc
        server = [line for line in version.splitlines() if "Version" in line]
        return f"containerd {server[-1].split()[-1] if server else '?'}, runc, CNI on {BRIDGE}"

    def configure(self) -> None:
        """Imports the node's images unless containerd has them (its root survives a restart)."""
        present = set(ctr(self.settings, "images", "list", "--quiet", what="ctr images").split())
        for archive in builds.node_archives(self.settings, self.notify):
            names = _archive_names(archive)
            if not set(names) <= present:
                self.notify(f"importing {', '.join(names)}")
                import_archive(self.settings, archive)

    def after_stop(self) -> list[str]:
        """The pods' processes and the shims outlive containerd; then their mounts go."""
        problems = [f"pid {pid} survived SIGKILL" for pid in kill_pods(socket_path(self.settings))]
        leftover = unmount_under(containerd_dir(self.settings), self.settings.data_dir("kubelet"))
        return problems + [f"still mounted: {point}" for point in leftover]

    def endpoint(self) -> dict[str, Any]:
        return {
            "socket": str(socket_path(self.settings)),
            "namespace": NAMESPACE,
            "cni_conf_dir": str(self.cni_conf_dir),
        }


def import_archive(settings: StackSettings, archive: Path) -> None:
    ctr(settings, "images", "import", str(archive), what=f"importing {archive}")


def _archive_names(archive: Path) -> list[str]:
    """The image names a docker-archive carries, as containerd normalizes them."""
    listed = subprocess.run(
        ["tar", "-xOf", str(archive), "manifest.json"], capture_output=True, check=True
    ).stdout
    names = [tag for entry in json.loads(listed) for tag in entry.get("RepoTags") or []]
    return [containerd_name(name) for name in names]


def containerd_name(image: str) -> str:
    """An image name as containerd (and the kubelet) spell it: a bare name is Docker Hub's."""
    return image if "/" in image.split(":")[0] else f"docker.io/library/{image}"


def holds(settings: StackSettings, image: str) -> bool:
    """Whether the node's containerd has `image`."""
    listed = ctr(settings, "images", "list", "--quiet", what="ctr images").split()
    return containerd_name(image) in listed
