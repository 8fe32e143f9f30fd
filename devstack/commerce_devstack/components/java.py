"""Locating the JDK that runs Kafka, Kafka Connect and Elasticsearch."""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

from commerce_devstack.install.commands import SetupError

MIN_JAVA = 17


@cache
def java_home(java: str) -> Path:
    """JAVA_HOME of the `java` executable named in settings, checked to be Java 17 or newer."""
    found = shutil.which(java)
    if not found:
        raise SetupError("locating Java", f"{java!r} not found; install a JDK {MIN_JAVA}+")
    banner = subprocess.run([found, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)', banner)
    if not match or int(match.group(1)) < MIN_JAVA:
        raise SetupError("checking Java", f"{found} is not Java {MIN_JAVA}+:\n{banner}")
    return Path(found).resolve().parents[1]
