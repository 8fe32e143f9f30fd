"""The node's network on the host, and its undoing.

`apply` makes the pod bridge cni0 with the node address (so servers can listen there before
any pod exists), routes the Service ranges onto it, turns on forwarding and puts a guard first
in FORWARD and OUTPUT: packets of the cluster's ranges never leave through another interface,
and nothing is forwarded between the bridge and any other interface. Whatever it changes is
recorded first in `<state>/node/host.json` (the values before, which paths existed), so
`restore` puts the host back exactly, also after a run that was killed. One node per machine:
the bridge, the chains and the sysctls are global, so a marker in /run names the state folder
that owns them, and another state folder is refused.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from commerce_devstack.install.commands import SetupError, run
from commerce_devstack.install.debian import ensure_packages
from commerce_devstack.settings import StackSettings

BRIDGE = "cni0"
POD_CIDR = "10.244.0.0/24"  # this node's pods, handed out by host-local IPAM
CLUSTER_CIDR = "10.244.0.0/16"  # the controller manager allocates node ranges from it
SERVICE_CIDR = "10.0.0.0/24"  # the API server's --service-cluster-ip-range
EXTRA_SERVICE_CIDR = "10.1.0.0/16"  # a second ServiceCIDR object (components/apiserver.py)
CLUSTER_DNS = "10.0.0.10"
CGROUP_ROOT = "commerce"  # kubelet's cgroupRoot, in every cgroup v1 hierarchy
GUARD = "COMMERCE-NODE-GUARD"
OWNER = Path("/run/commerce-node.owner")

# Sysctls we or the kubelet set (the kubelet's kernel tunables), restored on `down`.
SYSCTLS = (
    "net.ipv4.ip_forward",
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
)
# Host paths the kubelet, containerd's shims and buildah write whatever their flags say;
# those that did not exist before the node are deleted by `restore`.
HOST_PATHS = (
    "/var/lib/kubelet",
    "/var/log/containers",
    "/var/log/pods",
    "/var/lib/cni",
    "/run/containerd",
    "/etc/cni",
    "/var/lib/containers",
    "/run/containers",
    "/var/run/containers",
)


def node_owner() -> str:
    """The state folder whose node holds the host ('' if none)."""
    try:
        return OWNER.read_text().strip()
    except FileNotFoundError:
        return ""


def node_ranges() -> tuple[str, ...]:
    return (CLUSTER_CIDR, SERVICE_CIDR, EXTRA_SERVICE_CIDR)


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def _quiet(argv: list[str]) -> bool:
    """Runs a check whose failure is an answer, not an error."""
    done = subprocess.run(argv, capture_output=True, check=False)
    return done.returncode == 0


def guard_chains() -> dict[str, tuple[str, list[list[str]]]]:
    """Chain -> (the built-in chain of the mangle table it is first in, its rules). Mangle
    runs before filter, where kube-proxy puts its own ACCEPT rules first."""
    egress = [
        ["-o", "lo", "-j", "RETURN"],
        ["-o", BRIDGE, "-j", "RETURN"],
        ["-s", CLUSTER_CIDR, "-j", "DROP"],
        *(["-d", cidr, "-j", "DROP"] for cidr in node_ranges()),
    ]
    return {
        # Forwarding stays on the bridge: pod to pod, pod to a Service's pod.
        f"{GUARD}-FORWARD": (
            "FORWARD",
            [
                ["-i", BRIDGE, "!", "-o", BRIDGE, "-j", "DROP"],
                ["!", "-i", BRIDGE, "-o", BRIDGE, "-j", "DROP"],
            ],
        ),
        # Whatever leaves: the cluster's addresses only through lo or the bridge.
        f"{GUARD}-EGRESS": ("POSTROUTING", egress),
    }


@dataclass
class HostRecord:
    """The host as it was before the node: written once, kept until `restore` is done."""

    sysctls: dict[str, str] = field(default_factory=dict)
    existing_paths: list[str] = field(default_factory=list)
    bridge_existed: bool = False

    @classmethod
    def capture(cls) -> HostRecord:
        return cls(
            sysctls={
                name: _sysctl_path(name).read_text().strip()
                for name in SYSCTLS
                if _sysctl_path(name).exists()
            },
            existing_paths=[p for p in HOST_PATHS if Path(p).exists()],
            bridge_existed=_quiet(["ip", "link", "show", BRIDGE]),
        )

    @classmethod
    def load(cls, path: Path) -> HostRecord | None:
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        return cls(
            sysctls=dict(raw["sysctls"]),
            existing_paths=list(raw["existing_paths"]),
            bridge_existed=bool(raw["bridge_existed"]),
        )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "sysctls": self.sysctls,
                    "existing_paths": self.existing_paths,
                    "bridge_existed": self.bridge_existed,
                },
                indent=2,
            )
        )
        tmp.replace(path)


class NodeOwnedElsewhere(SetupError):
    pass


class HostNetwork:
    def __init__(self, settings: StackSettings, state_dir: Path | None = None) -> None:
        """`state_dir` names another stack's folder when undoing a node it abandoned."""
        self.settings = settings
        self.record_file = (state_dir or settings.state_dir) / "node" / "host.json"

    @property
    def applied(self) -> bool:
        return self.record_file.exists()

    def _claim(self) -> None:
        mine = str(self.settings.state_dir.resolve())
        owner = node_owner()
        if owner and owner != mine and (Path(owner) / "node" / "host.json").exists():
            raise NodeOwnedElsewhere(
                "preparing the node",
                f"the node of the stack in {owner} runs on this machine (one per machine: "
                "its bridge, iptables chains and sysctls are global); `make down` there first",
            )
        OWNER.write_text(mine + "\n")

    def apply(self) -> None:
        """Idempotent: a second `up`, or one after a killed run, finds most of it done."""
        # The guard needs iptables before the components install theirs (containerd's list
        # has it too): a new machine may have none.
        ensure_packages("iptables", ["iptables"])
        self._claim()
        if not self.applied:
            HostRecord.capture().save(self.record_file)
        node = self.settings.node_address
        prefix = ipaddress.ip_network(POD_CIDR).prefixlen
        if not _quiet(["ip", "link", "show", BRIDGE]):
            run(["ip", "link", "add", BRIDGE, "type", "bridge"], what="creating the pod bridge")
        if f"inet {node}/{prefix} " not in run(["ip", "-4", "addr", "show", BRIDGE], what="ip"):
            run(["ip", "addr", "add", f"{node}/{prefix}", "dev", BRIDGE], what="node address")
        run(["ip", "link", "set", BRIDGE, "up"], what="bringing the pod bridge up")
        for cidr in (SERVICE_CIDR, EXTRA_SERVICE_CIDR):
            run(
                ["ip", "route", "replace", cidr, "dev", BRIDGE, "src", node],
                what=f"routing {cidr} onto the bridge",
            )
        _sysctl_path("net.ipv4.ip_forward").write_text("1\n")
        self._guard()
        self._cgroups()

    def _guard(self) -> None:
        ipt = ["iptables", "-w", "-t", "mangle"]
        for chain, (builtin, rules) in guard_chains().items():
            if not _quiet([*ipt, "-L", chain, "-n"]):
                run([*ipt, "-N", chain], what=f"creating {chain}")
            run([*ipt, "-F", chain], what=f"flushing {chain}")
            for rule in rules:
                run([*ipt, "-A", chain, *rule], what=f"filling {chain}")
            if not _quiet([*ipt, "-C", builtin, "-j", chain]):
                run([*ipt, "-I", builtin, "1", "-j", chain], what=f"guarding {builtin}")

    def _cgroups(self) -> None:
        for hierarchy in cgroup_hierarchies():
            root = hierarchy / CGROUP_ROOT
            root.mkdir(exist_ok=True)
            if hierarchy.name == "cpuset":  # a new cpuset has no CPUs until given some
                for name in ("cpuset.cpus", "cpuset.mems"):
                    if not (root / name).read_text().strip():
                        (root / name).write_text((hierarchy / name).read_text())

    def restore(self) -> list[str]:
        """Undoes `apply` once nothing of the node runs; returns what it could not undo."""
        record = HostRecord.load(self.record_file)
        if record is None:
            return []
        problems: list[str] = []
        ipt = ["iptables", "-w", "-t", "mangle"]
        for chain, (builtin, _rules) in guard_chains().items():
            while _quiet([*ipt, "-D", builtin, "-j", chain]):
                pass
            if _quiet([*ipt, "-L", chain, "-n"]):
                _quiet([*ipt, "-F", chain])
                if not _quiet([*ipt, "-X", chain]):
                    problems.append(f"iptables chain {chain} still referenced")
        for cidr in (SERVICE_CIDR, EXTRA_SERVICE_CIDR):
            _quiet(["ip", "route", "del", cidr, "dev", BRIDGE])
        bridge_left = _quiet(["ip", "link", "show", BRIDGE])
        if not record.bridge_existed and bridge_left and not _quiet(["ip", "link", "del", BRIDGE]):
            problems.append(f"bridge {BRIDGE} could not be deleted")
        for name, value in record.sysctls.items():
            try:
                _sysctl_path(name).write_text(value + "\n")
            except OSError as exc:
                problems.append(f"sysctl {name}: {exc}")
        problems += remove_kube_chains()
        problems += remove_cgroups()
        for path in HOST_PATHS:
            if path not in record.existing_paths and Path(path).exists():
                shutil.rmtree(path, ignore_errors=True)
                if Path(path).exists():
                    problems.append(f"{path} could not be deleted")
        if not problems:
            self.record_file.unlink()
            OWNER.unlink(missing_ok=True)
        return problems


def remove_kube_chains() -> list[str]:
    """The KUBE-* chains the kubelet (its canaries) and kube-proxy leave, in both families."""
    problems = []
    for tool in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle"):
            done = subprocess.run(
                [tool, "-w", "-t", table, "-S"], capture_output=True, text=True, check=False
            )
            chains, jumps = kube_chains(done.stdout)
            for rule in jumps:
                _quiet([tool, "-w", "-t", table, "-D", *rule])
            for chain in chains:
                _quiet([tool, "-w", "-t", table, "-F", chain])
            for chain in chains:
                if not _quiet([tool, "-w", "-t", table, "-X", chain]):
                    problems.append(f"{tool} -t {table}: chain {chain} left")
    return problems


def kube_chains(rules: str) -> tuple[list[str], list[list[str]]]:
    """From `iptables -S` output: the KUBE-* chains, and the rules (without `-A`) that jump to
    them. Words are split as the shell would: kube-proxy's rules carry quoted comments
    ("kubernetes load balancer firewall"), and a rule split on spaces cannot be deleted."""
    lines = [shlex.split(line) for line in rules.splitlines()]
    chains = [words[1] for words in lines if words[:1] == ["-N"] and words[1].startswith("KUBE-")]
    jumps = [
        words[1:]
        for words in lines
        if words[:1] == ["-A"] and "-j" in words and words[words.index("-j") + 1] in chains
    ]
    return chains, jumps


def cgroup_hierarchies() -> list[Path]:
    """The mounted cgroup v1 hierarchies (cpu, memory, pids, name=systemd, ...)."""
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _device, mount_point, kind, *_ = line.split()
        if kind == "cgroup":
            found.append(Path(mount_point))
    return found


def cgroup_processes() -> list[int]:
    """Every process in a cgroup under the node's cgroup root (the pods' containers)."""
    pids: set[int] = set()
    for hierarchy in cgroup_hierarchies():
        for cgroup in cgroups_under(hierarchy / CGROUP_ROOT):
            try:
                pids.update(int(p) for p in (cgroup / "cgroup.procs").read_text().split())
            except OSError:
                continue
    return sorted(pids)


def cgroups_under(root: Path) -> list[Path]:
    """The cgroups below root (not root itself), deepest first: a cgroup goes only once its
    children have. The kubelet and containerd remove cgroups while this runs, so one that
    vanishes on the way is simply not listed (os.walk ignores a directory it cannot read;
    pathlib's rglob would raise)."""
    found = [
        Path(top) / name for top, dirs, _files in os.walk(root, topdown=False) for name in dirs
    ]
    return sorted(found, key=_depth, reverse=True)


def remove_cgroups() -> list[str]:
    problems = []
    for hierarchy in cgroup_hierarchies():
        root = hierarchy / CGROUP_ROOT
        if not root.is_dir():
            continue
        for cgroup in cgroups_under(root):
            try:
                cgroup.rmdir()
            except FileNotFoundError:
                continue  # removed by its owner meanwhile: what was wanted
            except OSError as exc:
                problems.append(f"cgroup {cgroup}: {exc.strerror}")
        try:
            root.rmdir()
        except OSError as exc:
            problems.append(f"cgroup {root}: {exc.strerror}")
    return problems


def _depth(path: Path) -> int:
    return len(path.parts)
