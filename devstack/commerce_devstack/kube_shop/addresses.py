"""Where the shop's services answer on this machine: the development runtime's Service proxies
(.stack/devruntime/services.<namespace>.json, `<namespace>/<service>:<port>` ->
`127.0.0.1:<local port>`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DEFAULT_HTTP_PORT = 8080


def http_port(service: dict[str, Any]) -> int:
    return int(((service.get("spec") or {}).get("ports") or {}).get("http", DEFAULT_HTTP_PORT))


def service_urls(services_file: Path, namespace: str, docs: list[dict[str, Any]]) -> dict[str, str]:
    """CommerceService name -> base URL, for those the runtime serves already."""
    try:
        proxies: dict[str, str] = json.loads(services_file.read_text())
    except FileNotFoundError:
        return {}
    urls = {}
    for doc in docs:
        if doc.get("kind") != "CommerceService":
            continue
        name = doc["metadata"]["name"]
        local = proxies.get(f"{namespace}/{name}:{http_port(doc)}")
        if local is not None:
            urls[name] = f"http://{local}"
    return urls
