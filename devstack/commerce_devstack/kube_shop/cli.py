"""`commerce-kube-shop up | demo | status`: the shop from samples/ on the stack's Kubernetes
node (`make up`, `make demo`): the project's image built and imported, the operator installed
with Helm, the samples applied, every resource Ready, demo data through the Ingress. The
stack must be up; the shop's pods stop with the node (`make down`)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, cast

import httpx
import yaml
from kubernetes import client, config
from rich.console import Console

from commerce_devstack import connect_secrets, endpoints
from commerce_devstack.endpoints import Endpoints, StackNotRunning
from commerce_devstack.kube_shop import identity, operator_release
from commerce_devstack.kube_shop.addresses import (
    cluster_urls,
    ingress_paths,
    public_url,
    routed_services,
)
from commerce_devstack.kube_shop.demo_data import DemoData, seed
from commerce_devstack.kube_shop.demo_orders import run_demo
from commerce_devstack.kube_shop.image import build_and_import, prune
from commerce_devstack.kube_shop.local_secrets import local_secrets
from commerce_devstack.kube_shop.manifests import (
    commerce_resources,
    documents,
    pin_image,
    sample_documents,
)
from commerce_devstack.kube_shop.readiness import wait_ready
from commerce_devstack.kube_shop.settings import KubeShopSettings
from commerce_devstack.settings import StackSettings


class Shop:
    def __init__(self, stack: Endpoints, console: Console) -> None:
        self.stack = stack
        self.settings = KubeShopSettings()
        self.stack_settings = StackSettings()
        self.console = console
        kube = stack["kube-apiserver"]
        self.kubeconfig = str(kube["kubeconfig"])
        self.kubectl = [str(kube["kubectl"]), "--kubeconfig", self.kubeconfig]
        self.helm = str(kube["helm"])
        self.docs = sample_documents(self.settings.samples_dir)
        self.state = self.stack_settings.state_dir / "kube-shop"
        self.began = time.monotonic()

    def api(self) -> client.CustomObjectsApi:
        api_client = config.new_client_from_config(config_file=self.kubeconfig)  # type: ignore[no-untyped-call]
        return client.CustomObjectsApi(cast(client.ApiClient, api_client))

    def run_kubectl(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [*self.kubectl, *args], input=stdin, capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}:\n{done.stderr.strip()}")
        return done.stdout

    def step(self, message: str) -> None:
        """A step's line, with the time since the command began (where a slow `up` went)."""
        elapsed = time.monotonic() - self.began
        self.console.print(f"[bold]▸[/bold] [dim]{elapsed:6.1f} s[/dim] {message}")

    def service_urls(self) -> dict[str, str]:
        """Each CommerceService's cluster address (reachable from this machine too)."""
        listed = json.loads(
            self.run_kubectl("get", "svc", "-n", self.settings.namespace, "-o=json")
        )
        wanted = {d["metadata"]["name"] for d in self.docs if d.get("kind") == "CommerceService"}
        return {k: v for k, v in cluster_urls(listed["items"]).items() if k in wanted}

    def public_urls(self) -> dict[str, str]:
        """Each service through the Ingress when it routes there, else its cluster address."""
        public = public_url(self.stack_settings)
        routed = routed_services(self.docs)
        return {
            name: public if name in routed else url for name, url in self.service_urls().items()
        }

    def wait_routed(self, timeout_s: float = 60) -> None:
        """Until the Ingress controller routes every path of the samples' Ingress: it reads
        Ingresses and endpoints every few seconds, so a Service that just became ready may
        still answer 502 there."""
        paths = ingress_paths(self.docs)
        deadline = time.monotonic() + timeout_s
        public = public_url(self.stack_settings)
        with httpx.Client(timeout=5) as http:
            while paths:
                answers = {path: http.get(f"{public}{path}").status_code for path in paths}
                paths = [path for path, status in answers.items() if status in (502, 503)]
                if paths and time.monotonic() > deadline:
                    raise RuntimeError(f"the Ingress does not route {paths}: {answers}")
                time.sleep(0.5 if paths else 0)

    def helm_run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                self.helm,
                f"--kubeconfig={self.kubeconfig}",
                f"--namespace={self.settings.operator_namespace}",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )

    def clear_stuck_release(self) -> None:
        """A `make up` killed during `helm upgrade` leaves the release pending, and helm then
        refuses to upgrade it: roll it back (or uninstall a first install) first."""
        listed = self.helm_run("history", self.settings.release, "-o=json")
        if listed.returncode != 0:
            return  # no release yet
        command = operator_release.recovery(json.loads(listed.stdout), self.settings.release)
        if command is None:
            return
        self.console.print(f"  the release was left pending by a killed run: helm {command[0]}")
        done = self.helm_run(*command, "--wait")
        if done.returncode != 0:
            raise RuntimeError(f"helm {' '.join(command)}: {done.stdout}{done.stderr}")

    def mount_connect_secrets(self, secrets: list[dict[str, Any]]) -> None:
        """The Secrets the OutboxConnectors name, under the stack's Connect worker's secrets
        root as a cluster mounts them on its workers (<root>/<namespace>/<secret>/<key>): the
        connector configs reference them there, never hold them."""
        root = self.stack["connect"].get("secrets_root")
        if root is None:
            return
        named = {
            doc["spec"]["database"]["credentialsSecretRef"]["name"]
            for doc in self.docs
            if doc.get("kind") == "OutboxConnector"
        }
        for secret in secrets:
            meta = secret["metadata"]
            if meta["name"] in named:
                connect_secrets.put(
                    Path(root), f"{meta['namespace']}/{meta['name']}", secret["stringData"]
                )

    # ---- the commands ----------------------------------------------------------------------

    def up(self) -> int:
        crds = sorted(str(p) for p in self.settings.crds_dir.glob("*.yaml"))
        self.step("CRDs: kubectl apply --server-side -f crds/ (Helm never upgrades CRDs)")
        self.run_kubectl("apply", "--server-side", "--force-conflicts", *(f"-f={c}" for c in crds))
        self.run_kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            *(f"crd/{documents(Path(c))[0]['metadata']['name']}" for c in crds),
        )
        self.step("namespace and Secrets (the stack's servers by their cluster names)")
        namespace = self.settings.samples_dir / "00-namespace.yaml"
        self.run_kubectl("apply", "--server-side", f"-f={namespace}")
        self.identity = identity.load_or_create(
            self.state / "identity.json", self.settings.namespace
        )
        secrets = local_secrets(
            documents(self.settings.secret_templates), self.stack, self.identity
        )
        self.run_kubectl(
            "apply", "--server-side", "--force-conflicts", "-f=-", stdin=yaml.safe_dump_all(secrets)
        )
        self.mount_connect_secrets(secrets)
        self.step(
            f"image {self.settings.image_repository}: buildah bud of Dockerfile at the last "
            "commit, tagged by content, imported into containerd"
        )
        image = build_and_import(
            self.stack_settings,
            self.settings.image_repository,
            self.state,
            lambda message: self.console.print(f"  {message}"),
        )
        self.console.print(
            f"  {image.name} from commit {image.commit[:12]}"
            f"{' imported' if image.imported else ' (containerd had it)'}"
        )
        self.step(f"helm upgrade --install {self.settings.release} charts/commerce-operator")
        self.clear_stuck_release()
        values = operator_release.values(self.stack, self.settings, image.name)
        helm = subprocess.run(
            operator_release.helm_command(self.helm, self.kubeconfig, self.settings, values),
            capture_output=True,
            text=True,
            timeout=600,
        )
        if helm.returncode != 0:
            raise RuntimeError(f"helm: {helm.stdout[-2000:]}{helm.stderr[-2000:]}")
        self.step(f"kubectl apply --server-side -f samples/, every image pinned to {image.name}")
        pinned = pin_image(self.docs, self.settings.image_repository, image.name)
        print(
            self.run_kubectl(
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f=-",
                stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": pinned}),
            ).rstrip()
        )
        wanted = commerce_resources(self.docs)
        states = wait_ready(
            self.api(), self.settings.namespace, wanted, self.settings.ready_timeout_s, self.console
        )
        if not all(s.ready for s in states):
            self.console.print(
                "[red]not every resource became Ready[/red]; `kubectl get pods -n "
                f"{self.settings.namespace}`, `kubectl logs -n {self.settings.operator_namespace} "
                f"deploy/{self.settings.release}`"
            )
            return 1
        pods = self.run_kubectl("get", "pods", "--all-namespaces", "-o=jsonpath={..image}")
        removed = prune(
            self.stack_settings, self.settings.image_repository, [image.name, *pods.split()]
        )
        if removed:
            self.console.print(f"  older images removed: {', '.join(removed)}")
        self.step("demo data through the Ingress")
        self.wait_routed()
        staff = self.identity["staff-bootstrap"]
        demo, created = seed(
            self.public_urls(), self.state / "demo.json", (staff["email"], staff["password"])
        )
        self.console.print(
            f"  {'seeded' if created else 'already there'}: {len(demo.categories)} categories, "
            f"{len(demo.skus)} products with stock, {len(demo.passwords)} customers"
        )
        self.summary(demo)
        self.console.print(f"\nthe shop is up in {time.monotonic() - self.began:.1f} s")
        return 0

    def summary(self, demo: DemoData) -> None:
        urls = self.public_urls()
        self.console.print(
            f"\n[bold]The shop[/bold]: {public_url(self.stack_settings)}/api/v1/... (samples/"
            "40-ingress.yaml, served by Skipper); each service's cluster address:"
        )
        for name, url in sorted(self.service_urls().items()):
            self.console.print(f"  {name:<10} {url}")
        # Plain print: a table must not be wrapped or read as markup.
        print("\n" + self.run_kubectl("get", "commerce", "-n", self.settings.namespace).rstrip())
        print(self.run_kubectl("get", "pods", "-n", self.settings.namespace).rstrip())
        email = next(iter(demo.passwords), "<email>")
        password = demo.passwords.get(email, "<password>")
        staff = self.identity["staff-bootstrap"]
        self.console.print(
            f"\n[bold]Accounts[/bold]: staff {staff['email']} / {staff['password']}, customers "
            + ", ".join(f"{e} / {p}" for e, p in demo.passwords.items())
            + f" (kept in {self.state}/)"
        )
        self.console.print(
            "\n[bold]Sign in, then place an order[/bold] (run the order twice: the same "
            "Idempotency-Key gets the same order back):"
        )
        print(
            f"TOKEN=$(curl -s -X POST {urls.get('user', '<user url>')}/api/v1/auth/token "
            "-H 'content-type: application/json' "
            f'-d \'{{"email": "{email}", "password": "{password}"}}\' | jq -r .access_token)'
        )
        print(
            f"curl -s -X POST {urls.get('order', '<order url>')}/api/v1/orders "
            "-H \"Authorization: Bearer $TOKEN\" -H 'content-type: application/json' "
            f"-H 'Idempotency-Key: try-{uuid.uuid4().hex[:12]}' "
            f'-d \'{{"items": [{{"sku": "{demo.skus[0]}", '
            '"quantity": 1}], "payment": {"token": "tok_visa"}}\''
        )
        print(
            f'curl -s -H "Authorization: Bearer $TOKEN" '
            f"{urls.get('order', '<order url>')}/api/v1/orders/<order_id>"
            "   # COMPLETED a moment later; `make demo` does both and shows the saga"
        )
        if "search" in urls:
            print(f"curl -s '{urls['search']}/api/v1/search?q=mug'   # the catalog, searched")

    def demo(self) -> int:
        demo = DemoData.load(self.state / "demo.json")
        if demo is None:
            self.console.print("no demo data: run `make up` first")
            return 1
        for title, story in run_demo(self.public_urls(), demo):
            self.console.print(f"\n[bold]order {story.order_id}[/bold] ({title})")
            for ms, what in story.transitions:
                self.console.print(f"  +{ms:>5} ms  {what}")
            self.console.print(f"  trace id: {story.trace_id}")
        return 0

    def status(self) -> int:
        print(
            self.run_kubectl(
                "get", "deploy", "-n", self.settings.operator_namespace, self.settings.release
            ).rstrip()
        )
        print(self.run_kubectl("get", "commerce", "-n", self.settings.namespace).rstrip())
        print(self.run_kubectl("get", "pods", "-n", self.settings.namespace).rstrip())
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="commerce-kube-shop", description=__doc__)
    parser.add_argument("command", choices=["up", "demo", "status"])
    args = parser.parse_args(argv)
    console = Console()
    try:
        stack = endpoints.load()
    except StackNotRunning as exc:
        console.print(str(exc))
        return 1
    shop = Shop(stack, console)
    try:
        command: Any = getattr(shop, args.command)
        return int(command())
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        console.print(f"[red]{exc}[/red]")
        return 1


if __name__ == "__main__":
    sys.exit(main())
