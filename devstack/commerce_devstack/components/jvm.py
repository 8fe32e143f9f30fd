"""Running JVM servers (Kafka, Kafka Connect, Elasticsearch): the JDK and the command line."""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

from commerce_devstack.install.commands import SetupError

MIN_JAVA = 17

LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = warn
logger.state.name = state.change.logger
logger.state.level = warn
logger.reflections.name = org.reflections
logger.reflections.level = error
"""


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


def write_log_config(path: Path, level: str = "INFO") -> Path:
    """A log4j2 config that writes to stdout (our per-component log file), quiet by default."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(LOG4J2.format(level=level))
    return path


def java_command(java: str, heap: str, log_config: Path, classpath: Path, main: str) -> list[str]:
    return [
        str(java_home(java) / "bin" / "java"),
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log_config}",
        "-cp",
        f"{classpath}/*",
        main,
    ]
