"""Git over file:// and over ssh to a real sshd, with host keys checked."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from libs.devservers import git
from libs.devservers.sshd import GitSshServer
from tests.harness.git_fixtures import GitServer
from tests.harness.hygiene import child_pids

pytestmark = pytest.mark.integration


def _git(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args],
        env={**os.environ, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


def test_sshd_starts_answers_and_stops_leaving_nothing(tmp_path: Path) -> None:
    with GitSshServer(tmp_path / "sshd") as sshd:
        pid = sshd.pid
        assert pid in child_pids()
        assert sshd.known_hosts.startswith(f"[127.0.0.1]:{sshd.port} ssh-ed25519 AAAA")
        assert sshd.known_hosts_path.read_text().strip() == sshd.known_hosts
        assert sshd.client_private_key.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert not sshd.running
    assert pid not in child_pids()


def test_file_repo_seed_commit_and_read(git_server: GitServer) -> None:
    path, url = git_server.new_repo("app")
    assert url == path.as_uri() and path.name.startswith("app")
    first = git.seed_repo(url, {"deploy/app.yaml": "replicas: 1\n", "README.md": "hi\n"})
    assert git.head(path, "main") == first
    second = git.commit_files(url, {"deploy/app.yaml": "replicas: 2\n"}, "Scale up", delete=["README.md"])
    assert git.head(path) == second
    assert git.log_messages(path) == ["Scale up", "Seed repository"]
    assert git.show_file(path, "deploy/app.yaml") == "replicas: 2\n"
    with pytest.raises(git.GitError):
        git.show_file(path, "README.md")
    other, _ = git_server.new_repo("app")
    assert other != path  # names are unique within the session

    # a branch the remote lacks starts from its HEAD
    dev = git.commit_files(url, {"dev.txt": "d\n"}, "On dev", branch="dev")
    assert git.head(path, "dev") == dev
    assert git.log_messages(path, "dev") == ["On dev", "Scale up", "Seed repository"]
    assert git.head(path, "main") == second

    with pytest.raises(ValueError):
        git.commit_files(url, {"../escape.txt": "x"}, "Nope")


def test_clone_over_ssh_checks_the_host_key(git_server: GitServer, tmp_path: Path) -> None:
    path, _ = git_server.new_repo("over-ssh")
    ssh = git_server.ssh
    sha = git.seed_repo(ssh.url_for(path), {"a.txt": "over ssh\n"}, env=ssh.git_env())
    assert git.head(path) == sha

    cloned = _git("clone", "-q", ssh.url_for(path), str(tmp_path / "clone"), env=ssh.git_env())
    assert cloned.returncode == 0, cloned.stderr
    assert (tmp_path / "clone" / "a.txt").read_text() == "over ssh\n"

    # Another host key for the same [host]:port must be refused, never accepted or added.
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(
        f"[127.0.0.1]:{ssh.port} ssh-ed25519 {stranger.with_suffix('.pub').read_text().split()[1]}\n"
    )
    refused = _git("clone", "-q", ssh.url_for(path), str(tmp_path / "refused"), env=ssh.git_env(wrong))
    assert refused.returncode != 0
    assert "Host key verification failed" in refused.stderr
    assert wrong.read_text().count("\n") == 1

    # An empty known_hosts is refused too (StrictHostKeyChecking=yes: no trust on first use).
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    unknown = _git("ls-remote", ssh.url_for(path), env=ssh.git_env(empty))
    assert unknown.returncode != 0
    assert "Host key verification failed" in unknown.stderr
    assert empty.read_text() == ""


def test_ssh_refuses_a_key_it_does_not_know(git_server: GitServer, tmp_path: Path) -> None:
    path, _ = git_server.new_repo("locked")
    ssh = git_server.ssh
    intruder = tmp_path / "intruder"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(intruder)], check=True)
    command = ssh.ssh_command().replace(str(ssh.client_key_path), str(intruder))
    denied = _git("ls-remote", ssh.url_for(path), env={"GIT_SSH_COMMAND": command})
    assert denied.returncode != 0
    assert "Permission denied" in denied.stderr
