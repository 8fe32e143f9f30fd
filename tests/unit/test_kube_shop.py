"""`make up`'s pure parts: the samples' Secrets filled from the stack (cluster names of the
stack's servers), readiness of a resource, which MongoDB database a URI selects, the image's
build context (a commit, never the working tree) and its content tag pinned in the samples."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from commerce_devstack.endpoints import Endpoints
from commerce_devstack.install.commands import SetupError
from commerce_devstack.kube_shop import build_context
from commerce_devstack.kube_shop.image import tag_of
from commerce_devstack.kube_shop.local_secrets import NoLocalValue, local_secrets
from commerce_devstack.kube_shop.manifests import documents, pin_image
from commerce_devstack.kube_shop.operator_release import helm_command, recovery
from commerce_devstack.kube_shop.readiness import state_of
from commerce_devstack.kube_shop.settings import KubeShopSettings
from commerce_services.db.document_store import document_database

STACK = Endpoints(
    components={
        "mariadb": {
            "host": "10.244.0.1",
            "port": 3307,
            "databases": {
                f"shop_{s}": {
                    "database": f"commerce_shop_{s}",
                    "user": f"shop_{s}_svc",
                    "password_ref": f"mariadb.shop_{s}",
                    "migration_user": f"shop_{s}_migrator",
                    "migration_password_ref": f"mariadb.shop_{s}_migrator",
                }
                for s in ("product", "order", "payment")
            },
            "replication": {"user": "debezium", "password_ref": "mariadb.debezium"},
        },
        "kafka": {"bootstrap_servers": "10.244.0.1:9093"},
        "ferretdb": {"uri": "mongodb://10.244.0.1:27018/"},
    },
    secrets={
        "mariadb": {
            "shop_product": "p-secret",
            "shop_order": "o-secret",
            "shop_payment": "y-secret",
            "debezium": "d-secret",
            **{
                f"shop_{s}_migrator": f"{s}-migration-secret"
                for s in ("product", "order", "payment")
            },
        }
    },
)


IDENTITY = {
    "user-signing-keys": {"jwks": '{"keys": []}', "activeKeyId": "k1"},
    "staff-bootstrap": {"email": "staff@example.com", "password": "s-secret"},
    **{
        f"{service}-grpc": {"tls.crt": "c", "tls.key": "k", "ca.crt": "ca"}
        for service in ("user", "product", "order")
    },
}


def test_every_template_secret_is_filled_with_exactly_its_keys() -> None:
    templates = documents(KubeShopSettings().secret_templates)
    filled = {s["metadata"]["name"]: s for s in local_secrets(templates, STACK, IDENTITY)}
    assert set(filled) == {t["metadata"]["name"] for t in templates}
    for template in templates:
        name = template["metadata"]["name"]
        assert set(filled[name]["stringData"]) == set(template["stringData"])
        assert filled[name]["metadata"]["namespace"] == template["metadata"]["namespace"]
    assert filled["order-db"]["stringData"] == {
        "host": "mariadb.infra.svc",
        "port": "3307",
        "database": "commerce_shop_order",
        "username": "shop_order_svc",
        "password": "o-secret",
    }
    assert filled["order-db-migrations"]["stringData"]["username"] == "shop_order_migrator"
    assert filled["order-db-migrations"]["stringData"]["password"] == "order-migration-secret"
    # Read by the Connect worker on the host, outside the cluster's DNS: the node address.
    assert filled["debezium-replication"]["stringData"] == {
        "host": "10.244.0.1",
        "port": "3307",
        "username": "debezium",
        "password": "d-secret",
    }
    assert filled["kafka"]["stringData"] == {"bootstrapServers": "kafka.infra.svc:9093"}
    assert (
        filled["catalog-mongo"]["stringData"]["uri"]
        == "mongodb://ferretdb.infra.svc:27018/shop_catalog"
    )
    assert filled["staff-bootstrap"]["stringData"] == IDENTITY["staff-bootstrap"]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ({"kind": "Secret", "metadata": {"name": "vault", "namespace": "shop"}}, "'vault'"),
        (
            {
                "kind": "Secret",
                "metadata": {"name": "kafka", "namespace": "shop"},
                "stringData": {"bootstrapServers": "", "saslPassword": ""},
            },
            "saslPassword",
        ),
    ],
)
def test_a_secret_or_key_without_a_local_value_is_an_error(
    template: dict[str, Any], message: str
) -> None:
    with pytest.raises(NoLocalValue, match=message):
        local_secrets([template], STACK, IDENTITY)


def _resource(generation: int, observed: int | None, ready: str | None) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if observed is not None:
        status["observedGeneration"] = observed
    if ready is not None:
        status["conditions"] = [
            {"type": "Ready", "status": ready, "reason": "Why", "message": "because"}
        ]
    return {"metadata": {"generation": generation}, "status": status}


@pytest.mark.parametrize(
    ("body", "ready", "reason"),
    [
        (None, False, "NotFound"),
        (_resource(1, None, None), False, "Pending"),
        (_resource(2, 2, "True"), True, "Why"),
        (_resource(2, 1, "True"), False, "Why"),  # Ready for an older spec
        (_resource(2, 2, "False"), False, "Why"),
    ],
)
def test_ready_means_ready_for_the_current_generation(
    body: dict[str, Any] | None, ready: bool, reason: str
) -> None:
    state = state_of("CommerceService", "order", body)
    assert (state.ready, state.reason) == (ready, reason)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("mongodb://127.0.0.1:27017/", "commerce_catalog"),
        ("mongodb://127.0.0.1:27017", "commerce_catalog"),
        ("mongodb://u:p@db:27017/shop_catalog?authSource=admin", "shop_catalog"),
    ],
)
def test_the_uri_names_the_database_else_the_setting(uri: str, expected: str) -> None:
    assert document_database(SecretStr(uri), "commerce_catalog") == expected


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        check=True,
        capture_output=True,
    )


def test_the_build_context_is_the_commit_not_the_working_tree(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "Dockerfile").write_text("FROM scratch\n")
    (repo / "app.py").write_text("committed = True\n")
    _git(repo, "add", "Dockerfile", "app.py")
    _git(repo, "commit", "-q", "-m", "first")
    # Someone else's half-done edit and a new file they have not committed.
    (repo / "app.py").write_text("committed = False\n")
    (repo / "draft.py").write_text("raise ImportError\n")

    context = tmp_path / "context"
    (context / "stale").mkdir(parents=True)  # a killed run's leftover goes
    commit = build_context.export(repo, context)

    assert commit == build_context.revision(repo)
    assert sorted(p.name for p in context.iterdir()) == ["Dockerfile", "app.py"]
    assert (context / "app.py").read_text() == "committed = True\n"
    # The same content exported again is the same to the layer cache: one fixed mtime.
    assert {p.stat().st_mtime for p in context.iterdir()} == {build_context.FIXED_MTIME}


def test_a_folder_without_commits_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SetupError) as refused:
        build_context.export(tmp_path, tmp_path / "context")
    assert "git checkout" in refused.value.output


def test_the_image_of_the_samples_and_the_worker_is_pinned_and_others_are_kept() -> None:
    docs: list[dict[str, Any]] = [
        {"kind": "CommerceService", "spec": {"image": "commerce-platform:0.1.0"}},
        {"kind": "CatalogIndex", "spec": {"syncWorker": {"image": "commerce-platform:0.1.0"}}},
        {"kind": "CommerceService", "spec": {"image": "registry:5000/other:1.0"}},
        {"kind": "Ingress", "spec": {"rules": [{"host": "image"}]}},
    ]
    pinned = pin_image(docs, "commerce-platform", "commerce-platform:0123456789ab")
    assert pinned[0]["spec"]["image"] == "commerce-platform:0123456789ab"
    assert pinned[1]["spec"]["syncWorker"]["image"] == "commerce-platform:0123456789ab"
    assert pinned[2:] == docs[2:]
    assert docs[0]["spec"]["image"] == "commerce-platform:0.1.0"  # the samples stay as written


def test_helm_gets_the_content_tag_as_a_string() -> None:
    shop = KubeShopSettings()
    command = helm_command("helm", "kubeconfig", shop, {"image.tag": "012345678901", "replicas": 1})
    assert "--set-string=image.tag=012345678901" in command
    assert "--set=replicas=1" in command


@pytest.mark.parametrize(
    ("name", "tag"),
    [
        ("commerce-platform:0123456789ab", "0123456789ab"),
        ("localhost/commerce-platform:0123456789ab", "0123456789ab"),  # buildah's spelling
        ("docker.io/library/commerce-platform:0123456789ab", "0123456789ab"),  # containerd's
        ("localhost/commerce/coredns:v1.12.1", None),
        ("commerce-platform-old:1", None),
        ("sha256:0123456789ab", None),
    ],
)
def test_which_names_are_the_project_image(name: str, tag: str | None) -> None:
    assert tag_of(name, "commerce-platform") == tag


def _revision(number: int, status: str) -> dict[str, Any]:
    return {"revision": number, "status": status}


@pytest.mark.parametrize(
    ("history", "command"),
    [
        ([], None),
        ([_revision(1, "superseded"), _revision(2, "deployed")], None),
        ([_revision(1, "pending-install")], ["uninstall", "op"]),
        (
            [_revision(1, "superseded"), _revision(2, "deployed"), _revision(3, "pending-upgrade")],
            ["rollback", "op", "2"],
        ),
        (
            [_revision(1, "deployed"), _revision(2, "failed"), _revision(3, "pending-rollback")],
            [
                "rollback",
                "op",
                "1",
            ],
        ),
    ],
)
def test_a_release_a_killed_run_left_pending_is_cleared(
    history: list[dict[str, Any]], command: list[str] | None
) -> None:
    assert recovery(history, "op") == command
