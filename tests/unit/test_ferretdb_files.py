"""A FerretDB database file without its collection table is set aside so FerretDB can start;
every other file stays where it is."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from commerce_devstack.components.ferretdb_files import METADATA_TABLE, set_aside_unusable


def _sqlite(path: Path, *tables: str) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        for table in tables:
            connection.execute(f'CREATE TABLE "{table}" (name TEXT)')
    connection.close()


@pytest.mark.parametrize(
    ("files", "moved"),
    [
        ({}, []),
        ({"shop": [METADATA_TABLE, "products_1"]}, []),
        ({"shop": [METADATA_TABLE], "bare": []}, ["bare"]),
        ({"bare": [], "other": ["not_ferretdb"]}, ["bare", "other"]),
        ({"garbage": None}, ["garbage"]),
    ],
)
def test_only_files_without_the_collection_table_are_moved(
    tmp_path: Path, files: dict[str, list[str] | None], moved: list[str]
) -> None:
    data, aside = tmp_path / "data", tmp_path / "set-aside"
    data.mkdir()
    for name, tables in files.items():
        if tables is None:
            (data / f"{name}.sqlite").write_bytes(b"not a database at all, " * 100)
        else:
            _sqlite(data / f"{name}.sqlite", *tables)
            Path(f"{data / name}.sqlite-wal").touch()

    assert set_aside_unusable(data, aside) == moved
    for name in files:
        assert (data / f"{name}.sqlite").exists() == (name not in moved)
        assert (aside / f"{name}.sqlite").exists() == (name in moved)
    assert not [p for p in data.iterdir() if p.name.split(".")[0] in moved]
