"""Which iptables rules `down` (and the undoing of an abandoned node) deletes: every jump to a
KUBE-* chain, parsed as iptables quotes it, so that the chains themselves can go."""

from __future__ import annotations

import pytest

from commerce_devstack.node.network import kube_chains

FIREWALL_JUMP = [
    "INPUT", "-m", "conntrack", "--ctstate", "NEW",
    "-m", "comment", "--comment", "kubernetes load balancer firewall", "-j", "KUBE-PROXY-FIREWALL",
]  # fmt: skip
FORWARD_JUMP = [
    "FORWARD",
    "-m",
    "comment",
    "--comment",
    "kubernetes forwarding",
    "-j",
    "KUBE-FORWARD",
]
FILTER = "\n".join(
    [
        "-P INPUT ACCEPT",
        "-N OTHER",
        "-N KUBE-FORWARD",
        "-N KUBE-PROXY-FIREWALL",
        '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer'
        ' firewall" -j KUBE-PROXY-FIREWALL',
        '-A FORWARD -m comment --comment "kubernetes forwarding" -j KUBE-FORWARD',
        "-A FORWARD -j OTHER",
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
    ]
)


@pytest.mark.parametrize(
    ("rules", "chains", "jumps"),
    [
        ("", [], []),
        ("-P INPUT ACCEPT\n-N OTHER\n-A INPUT -j OTHER\n", [], []),
        (FILTER, ["KUBE-FORWARD", "KUBE-PROXY-FIREWALL"], [FIREWALL_JUMP, FORWARD_JUMP]),
    ],
)
def test_jumps_to_kube_chains_are_found_whole(
    rules: str, chains: list[str], jumps: list[list[str]]
) -> None:
    assert kube_chains(rules) == (chains, jumps)
