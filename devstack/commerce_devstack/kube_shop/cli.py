"""`commerce-kube-shop up | demo | status | down`: the shop from samples/ on the local stack,
driven by the operator (`make up`, `make demo`, `make down`). The stack must be up."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, cast

import yaml
from kubernetes import client, config
from rich.console import Console

from commerce_devstack import endpoints
from commerce_devstack.devruntime.runtime import services_file
from commerce_devstack.endpoints import Endpoints, StackNotRunning
from commerce_devstack.kube_shop import control_plane
from commerce_devstack.kube_shop.addresses import service_urls
from commerce_devstack.kube_shop.demo_data import DemoData, seed
from commerce_devstack.kube_shop.demo_orders import run_demo
from commerce_devstack.kube_shop.local_secrets import local_secrets
from commerce_devstack.kube_shop.manifests import commerce_resources, documents, sample_documents
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
        self.kubectl = [str(kube["kubectl"]), "--kubeconfig", str(kube["kubeconfig"])]
        self.docs = sample_documents(self.settings.samples_dir)
        self.state = self.stack_settings.state_dir / "kube-shop"

    def api(self) -> client.CustomObjectsApi:
        kubeconfig = str(self.stack["kube-apiserver"]["kubeconfig"])
        api_client = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        return client.CustomObjectsApi(cast(client.ApiClient, api_client))

    def run_kubectl(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [*self.kubectl, *args], input=stdin, capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}:\n{done.stderr.strip()}")
        return done.stdout

    def step(self, message: str) -> None:
        self.console.print(f"[bold]▸[/bold] {message}")

    def urls(self) -> dict[str, str]:
        return service_urls(
            services_file(self.stack_settings.state_dir, self.settings.namespace),
            self.settings.namespace,
            self.docs,
        )

    def wait_urls(self, timeout_s: float = 60) -> dict[str, str]:
        """Every CommerceService's address, once the runtime has written them all."""
        wanted = {d["metadata"]["name"] for d in self.docs if d.get("kind") == "CommerceService"}
        deadline = time.monotonic() + timeout_s
        while not wanted <= set(urls := self.urls()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no local address for {sorted(wanted - set(urls))}")
            time.sleep(0.5)
        return urls

    # ---- the commands ----------------------------------------------------------------------

    def up(self) -> int:
        crds = sorted(str(p) for p in self.settings.crds_dir.glob("*.yaml"))
        self.step("CRDs: kubectl apply --server-side -f crds/")
        self.run_kubectl("apply", "--server-side", "--force-conflicts", *(f"-f={c}" for c in crds))
        self.run_kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            *(f"crd/{documents(Path(c))[0]['metadata']['name']}" for c in crds),
        )
        self.step("namespace and Secrets (filled from the stack's generated credentials)")
        namespace = self.settings.samples_dir / "00-namespace.yaml"
        self.run_kubectl("apply", "--server-side", f"-f={namespace}")
        secrets = local_secrets(documents(self.settings.secret_templates), self.stack)
        self.run_kubectl(
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f=-",
            stdin=yaml.safe_dump_all(secrets),
        )
        self.step("operator and development runtime")
        backgrounds = (
            control_plane.operator(self.stack, self.settings),
            control_plane.devruntime(self.settings),
        )
        for background in backgrounds:
            self.console.print("  " + control_plane.ensure_running(background, self.stack_settings))
        for background in backgrounds:
            control_plane.check_alive(background, self.stack_settings)
        self.step("kubectl apply --server-side -f samples/")
        print(
            self.run_kubectl("apply", "--server-side", f"-f={self.settings.samples_dir}").rstrip()
        )
        wanted = commerce_resources(self.docs)
        states = wait_ready(
            self.api(), self.settings.namespace, wanted, self.settings.ready_timeout_s, self.console
        )
        if not all(s.ready for s in states):
            self.console.print(
                "[red]not every resource became Ready[/red]; logs: .stack/logs/operator.log, "
                ".stack/logs/devruntime.log, .stack/devruntime/logs/"
            )
            return 1
        self.step("demo data")
        demo, created = seed(self.wait_urls(), self.state / "demo.json")
        self.console.print(
            f"  {'seeded' if created else 'already there'}: {len(demo.categories)} categories, "
            f"{len(demo.skus)} products with stock, {len(demo.users)} users"
        )
        self.summary(demo)
        return 0

    def public_urls(self) -> dict[str, str]:
        """Each service through the Ingress when it routes there (the runtime serves it on
        the public address), else through its Service proxy."""
        ingress = [d for d in self.docs if d.get("kind") == "Ingress"]
        routed = {
            path["backend"]["service"]["name"]
            for d in ingress
            for rule in d["spec"].get("rules", [])
            for path in rule.get("http", {}).get("paths", [])
        }
        return {
            name: self.settings.public_url if name in routed else url
            for name, url in self.urls().items()
        }

    def summary(self, demo: DemoData) -> None:
        urls = self.public_urls()
        self.console.print(
            f"\n[bold]The shop[/bold]: {self.settings.public_url}/api/v1/... (samples/"
            "40-ingress.yaml); each service also answers on its Service proxy:"
        )
        for name, url in sorted(self.urls().items()):
            self.console.print(f"  {name:<10} {url}")
        # Plain print: a table must not be wrapped or read as markup.
        print("\n" + self.run_kubectl("get", "commerce", "-n", self.settings.namespace).rstrip())
        user = next(iter(demo.users.values()), "<user id>")
        self.console.print(
            "\n[bold]Place an order[/bold] (run it twice: the same Idempotency-Key gets the same "
            "order back):"
        )
        print(
            f"curl -s -X POST {urls.get('order', '<order url>')}/api/v1/orders "
            "-H 'content-type: application/json' "
            f"-H 'Idempotency-Key: try-{uuid.uuid4().hex[:12]}' "
            f'-d \'{{"user_id": "{user}", "items": [{{"sku": "{demo.skus[0]}", '
            '"quantity": 1}], "payment": {"token": "tok_visa"}}\''
        )
        print(
            f"curl -s {urls.get('order', '<order url>')}/api/v1/orders/<order_id>"
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
        for background in (
            control_plane.operator(self.stack, self.settings),
            control_plane.devruntime(self.settings),
        ):
            pid = control_plane.managed(background, self.stack_settings).pid()
            self.console.print(f"{background.name:<11} {'pid ' + str(pid) if pid else 'stopped'}")
        print(self.run_kubectl("get", "commerce", "-n", self.settings.namespace).rstrip())
        return 0

    def down(self) -> int:
        # The runtime first: its processes stop while the operator can still see them go.
        for background in (
            control_plane.devruntime(self.settings),
            control_plane.operator(self.stack, self.settings),
        ):
            stopped = control_plane.stop(background, self.stack_settings)
            self.console.print(f"{background.name}: {'stopped' if stopped else 'not running'}")
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="commerce-kube-shop", description=__doc__)
    parser.add_argument("command", choices=["up", "demo", "status", "down"])
    args = parser.parse_args(argv)
    console = Console()
    try:
        stack = endpoints.load()
    except StackNotRunning as exc:
        if args.command == "down":
            return 0
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
