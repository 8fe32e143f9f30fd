"""The image's build context: the files of a commit (HEAD), never the working tree.

Engineers share a working tree; half-done edits there must not end up in the image the shop
runs. `git archive` writes exactly the commit's files; their modification times are all set to
one fixed value, so a second export of the same content is byte for byte the same to buildah's
layer cache, whatever the commit's date.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from commerce_devstack.install.commands import SetupError

# Any fixed time works; the files' dates are not part of what the image is.
FIXED_MTIME = 0


def revision(repo: Path, ref: str = "HEAD") -> str:
    """The commit `ref` names, in full."""
    done = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SetupError(
            f"finding {ref} in {repo}",
            "the image is built from a commit: run `make up` in a git checkout\n" + done.stderr,
        )
    return done.stdout.strip()


def export(repo: Path, destination: Path, ref: str = "HEAD") -> str:
    """Replaces `destination` with the files of commit `ref`; returns the commit."""
    commit = revision(repo, ref)
    if destination.exists():
        shutil.rmtree(destination)
    destination.mkdir(parents=True)
    archive = destination.with_name(destination.name + ".tar")
    with archive.open("wb") as out:
        done = subprocess.run(
            ["git", "-C", str(repo), "archive", "--format=tar", commit],
            stdout=out,
            stderr=subprocess.PIPE,
            check=False,
        )
    if done.returncode != 0:
        raise SetupError(f"git archive {commit}", done.stderr.decode(errors="replace"))
    with tarfile.open(archive) as tar:
        tar.extractall(destination, filter="data")
    archive.unlink()
    for folder, dirs, files in os.walk(destination):
        for name in [*dirs, *files]:
            os.utime(Path(folder, name), (FIXED_MTIME, FIXED_MTIME), follow_symlinks=False)
    os.utime(destination, (FIXED_MTIME, FIXED_MTIME))
    return commit
