"""The mirror cache against real git over file:// and over ssh to a real sshd."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from libs.devservers.git import commit_files, seed_repo
from libs.git import Credentials, Git, GitError, GitRef, MirrorCache, ProxyConfig, classify, git_env
from tests.git.http_git import http_git_server
from tests.harness.git_fixtures import GitServer

pytestmark = pytest.mark.integration


async def _run(*args: str) -> bytes:
    result = await asyncio.to_thread(subprocess.run, list(args), check=True, capture_output=True)
    return result.stdout


def tag(bare: Path, name: str, commit: str, annotated: bool = False) -> None:
    args = ["git", "--git-dir", str(bare), "tag"]
    if annotated:
        args += ["-a", "-m", name]
    subprocess.run(
        [*args, name, commit],
        check=True,
        capture_output=True,
        env={"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"},
    )


async def test_resolve_fetch_export_and_delta_over_file(git_server: GitServer, tmp_path: Path) -> None:
    bare, url = git_server.new_repo("mirror")
    first = seed_repo(url, {"a.txt": "one", "dir/b.txt": "two"})
    tag(bare, "v1.0.0", first, annotated=True)
    cache = MirrorCache(tmp_path / "cache", Git())

    remote = await cache.ls_remote(url, ["refs/heads/main", "refs/tags/*"])
    assert GitRef(branch="main").resolve(remote).revision == f"main@sha1:{first}"
    resolved = GitRef(semver="^1").resolve(remote)
    assert (resolved.revision, resolved.commit) == (f"v1.0.0@sha1:{first}", first)  # annotated tag peeled

    async with cache.locked(url) as mirror:
        await cache.fetch(mirror, url, ["+refs/heads/main:refs/heads/main"])
        assert await cache.rev_parse(mirror, "refs/heads/main") == first
        out = tmp_path / "out"
        out.mkdir()
        await cache.export(mirror, first, out)
    assert (out / "dir" / "b.txt").read_text() == "two"

    second = commit_files(url, {"a.txt": "changed"}, "Change a")
    async with cache.locked(url) as mirror:
        assert not await cache.has_commit(mirror, second)
        await cache.fetch(mirror, url, ["+refs/heads/main:refs/heads/main"])
        assert await cache.has_commit(mirror, second)
        assert await cache.subject(mirror, second) == "Change a"
    assert cache.git.counts["init"] == 1  # one mirror per URL, reused


async def test_missing_repository_and_ref_are_classified(git_server: GitServer, tmp_path: Path) -> None:
    cache = MirrorCache(tmp_path / "cache", Git())
    with pytest.raises(GitError) as missing:
        await cache.ls_remote((tmp_path / "nope.git").as_uri(), ["refs/heads/main"])
    assert missing.value.kind == "not_found"
    _, url = git_server.new_repo("empty-branch")
    seed_repo(url, {"a": "a"})
    with pytest.raises(GitError) as ref:
        GitRef(branch="nope").resolve(await cache.ls_remote(url, ["refs/heads/nope"]))
    assert ref.value.kind == "ref_not_found"
    assert "refs/heads/nope" in str(ref.value)


async def test_ssh_with_identity_and_known_hosts(git_server: GitServer, tmp_path: Path) -> None:
    bare, _ = git_server.new_repo("ssh-mirror")
    url = git_server.ssh.url_for(bare)
    sha = seed_repo(url, {"x": "y"}, env=git_server.ssh.git_env())
    cache = MirrorCache(tmp_path / "cache", Git())
    good = Credentials(identity=git_server.ssh.client_private_key, known_hosts=git_server.ssh.known_hosts)
    async with git_env(url, good) as env:
        remote = await cache.ls_remote(url, ["refs/heads/main"], env=env)
        assert remote.get("refs/heads/main") == sha
        async with cache.locked(url) as mirror:
            await cache.fetch(mirror, url, ["+refs/heads/main:refs/heads/main"], env=env)
            assert await cache.has_commit(mirror, sha)

    wrong_host = Credentials(
        identity=git_server.ssh.client_private_key,
        known_hosts=f"[127.0.0.1]:{git_server.ssh.port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n",
    )
    async with git_env(url, wrong_host) as env:
        with pytest.raises(GitError) as host:
            await cache.ls_remote(url, ["refs/heads/main"], env=env)
    assert host.value.kind == "host_key"

    async with git_env(url, Credentials(identity=git_server.ssh.client_private_key)) as env:
        with pytest.raises(GitError) as unknown:
            await cache.ls_remote(url, ["refs/heads/main"], env=env)
    assert unknown.value.kind == "host_key"  # no known_hosts: never trusted

    other_key = tmp_path / "other"
    await _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key))
    bad = Credentials(
        identity=await asyncio.to_thread(other_key.read_text), known_hosts=git_server.ssh.known_hosts
    )
    async with git_env(url, bad) as env:
        with pytest.raises(GitError) as auth:
            await cache.ls_remote(url, ["refs/heads/main"], env=env)
    assert auth.value.kind == "auth"
    assert "PRIVATE KEY" not in str(auth.value)


@pytest.mark.parametrize(
    ("stderr", "kind"),
    [
        ("Host key verification failed.\nfatal: Could not read from remote repository.", "host_key"),
        ("git@127.0.0.1: Permission denied (publickey).", "auth"),
        ("fatal: Authentication failed for 'https://h/r.git/'", "auth"),
        ("fatal: unable to access 'https://h/r.git/': The requested URL returned error: 403", "auth"),
        (
            "fatal: unable to access 'http://127.0.0.1:40123/r.git/': Failed to connect: Connection refused",
            "not_found",
        ),
        ("fatal: '/x.git' does not appear to be a git repository", "not_found"),
        ("fatal: the remote end hung up unexpectedly", "other"),
    ],
)
def test_classify(stderr: str, kind: str) -> None:
    assert classify(stderr) == kind


async def test_timeout_kills_the_command(tmp_path: Path) -> None:
    git = Git()
    with pytest.raises(GitError) as slow:
        await git.run(["-c", "alias.nap=!sleep 5", "nap"], timeout=0.3, what="napping")
    assert slow.value.kind == "timeout"
    assert git.counts["nap"] == 1


async def test_https_credentials_stay_off_the_command_line(tmp_path: Path) -> None:
    creds = Credentials(username="u", password="s3cret", bearer_token="tok")
    async with git_env("https://example.invalid/r.git", creds) as env:
        assert "s3cret" not in " ".join(env.values())
        assert env["GIT_CONFIG_KEY_0"] == "http.extraHeader"
        askpass = Path(env["GIT_ASKPASS"])
        mode = (await asyncio.to_thread(askpass.stat)).st_mode
        assert oct(mode & 0o777) == "0o700"
        assert await _run(str(askpass), "Password for 'https://u@example.invalid': ") == b"s3cret"
        assert await _run(str(askpass), "Username for 'https://example.invalid': ") == b"u"
    assert not await asyncio.to_thread(askpass.exists)
    assert "s3cret" not in repr(creds)


async def test_https_basic_auth_and_bearer_token(git_server: GitServer, tmp_path: Path) -> None:
    bare, file_url = git_server.new_repo("over-http")
    sha = await asyncio.to_thread(seed_repo, file_url, {"k.yaml": "k: 1\n"})
    cache = MirrorCache(tmp_path / "cache", Git())
    async with http_git_server(bare.parent, username="git", password="pa55", token="t0ken") as base:
        url = f"{base}/{bare.name}"
        for creds in (Credentials(username="git", password="pa55"), Credentials(bearer_token="t0ken")):
            async with git_env(url, creds) as env:
                remote = await cache.ls_remote(url, ["refs/heads/main"], env=env)
                assert remote.get("refs/heads/main") == sha
                async with cache.locked(url) as mirror:
                    await cache.fetch(mirror, url, ["+refs/heads/main:refs/heads/main"], env=env)
                    assert await cache.has_commit(mirror, sha)
        async with git_env(url, Credentials(username="git", password="wrong")) as env:
            with pytest.raises(GitError) as denied:
                await cache.ls_remote(url, ["refs/heads/main"], env=env)
        assert denied.value.kind == "auth"
        assert "wrong" not in str(denied.value)
        async with git_env(url, None) as env:
            with pytest.raises(GitError) as anonymous:
                await cache.ls_remote(url, ["refs/heads/main"], env=env)
        assert anonymous.value.kind == "auth"


async def test_http_proxy_from_credentials(git_server: GitServer, tmp_path: Path) -> None:
    bare, file_url = git_server.new_repo("via-proxy")
    sha = await asyncio.to_thread(seed_repo, file_url, {"p.yaml": "p: 1\n"})
    cache = MirrorCache(tmp_path / "cache", Git())
    async with http_git_server(bare.parent, username="git", password="pa55") as proxy:
        # The repository host does not resolve: only the proxy can answer.
        url = f"http://git.invalid/{bare.name}"
        creds = Credentials(username="git", password="pa55", proxy=ProxyConfig(proxy))
        async with git_env(url, creds) as env:
            remote = await cache.ls_remote(url, ["refs/heads/main"], env=env)
        assert remote.get("refs/heads/main") == sha
        async with git_env(url, Credentials(username="git", password="pa55")) as env:
            with pytest.raises(GitError):
                await cache.ls_remote(url, ["refs/heads/main"], env=env)


async def test_a_wedged_mirror_heals(git_server: GitServer, tmp_path: Path) -> None:
    _, url = git_server.new_repo("wedged")
    first = await asyncio.to_thread(seed_repo, url, {"a": "1"})
    cache = MirrorCache(tmp_path / "cache", Git())
    async with cache.locked(url) as mirror:
        await cache.fetch(mirror, url, ["+refs/heads/main:refs/heads/main"])
    second = await asyncio.to_thread(commit_files, url, {"a": "2"}, "two")
    # A fetch killed half-way leaves its locks behind.
    await asyncio.to_thread((cache.path_for(url) / "shallow.lock").write_text, "")
    async with cache.locked(url) as mirror:
        await cache.fetch(mirror, url, ["+refs/heads/main:refs/heads/main"])
        assert await cache.has_commit(mirror, second)
    # A damaged mirror is started afresh.
    await asyncio.to_thread((cache.path_for(url) / "config").write_text, "[core\ngarbage")
    third = await asyncio.to_thread(commit_files, url, {"a": "3"}, "three")
    async with cache.locked(url) as mirror:
        await cache.fetch(mirror, url, ["+refs/heads/main:refs/heads/main"])
        assert await cache.has_commit(mirror, third)
    assert cache.git.counts["init"] == 2  # the mirror was re-created once
    assert first != second != third


async def test_prune_removes_only_idle_mirrors(git_server: GitServer, tmp_path: Path) -> None:
    _, old_url = git_server.new_repo("idle")
    _, new_url = git_server.new_repo("busy")
    cache = MirrorCache(tmp_path / "cache", Git())
    for url in (old_url, new_url):
        async with cache.locked(url):
            pass
    marker = cache.path_for(old_url) / "sluice-last-used"
    await asyncio.to_thread(os.utime, marker, (1, 1))
    assert await cache.prune(3600) == [cache.path_for(old_url)]
    assert not await asyncio.to_thread(cache.path_for(old_url).exists)
    assert await asyncio.to_thread(cache.path_for(new_url).exists)
    async with cache.locked(old_url) as mirror:  # comes back on next use
        assert await asyncio.to_thread((mirror / "HEAD").exists)
