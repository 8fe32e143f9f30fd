"""Which MongoDB database a service uses: the one its connection string names, if it names one
(`mongodb://host/shop_catalog`, the standard default-database part of the URI, so a Secret with
the URI says everything), else the service's MONGO_DATABASE setting."""

from __future__ import annotations

from pydantic import SecretStr
from pymongo import uri_parser


def document_database(uri: SecretStr, setting: str) -> str:
    named = uri_parser.parse_uri(uri.get_secret_value())["database"]
    return str(named) if named else setting
