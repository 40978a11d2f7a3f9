"""Git fixtures: bare repositories served over file:// and over ssh by a real sshd."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from libs.devservers import git
from libs.devservers.sshd import GitSshServer
from tests.harness.hygiene import register_server

__all__ = ["GitServer", "git_server"]


class GitServer:
    """Bare repositories under :attr:`root`, reachable as ``file://`` URLs and, through :attr:`ssh`,
    as ``ssh://`` URLs (``ssh.url_for(path)``; ``ssh.git_env()`` for the git CLI)."""

    def __init__(self, root: Path, ssh: GitSshServer) -> None:
        self.root = root
        self.ssh = ssh

    def new_repo(self, name: str, default_branch: str = "main") -> tuple[Path, str]:
        """Create an empty bare repository; returns ``(path, file_url)``. Names are made unique
        within the session (``app``, ``app-2``, …), so tests need not coordinate."""
        stem = name.removesuffix(".git")
        path = self.root / f"{stem}.git"
        suffix = 1
        while path.exists():
            suffix += 1
            path = self.root / f"{stem}-{suffix}.git"
        git.init_bare(path, default_branch)
        return path, path.as_uri()

    def ssh_url(self, repo_path: Path) -> str:
        return self.ssh.url_for(repo_path)


@pytest.fixture(scope="session")
def git_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    base = tmp_path_factory.mktemp("git")
    sshd = GitSshServer(base / "sshd")
    register_server(sshd)
    with sshd:
        yield GitServer(base / "repos", sshd)
