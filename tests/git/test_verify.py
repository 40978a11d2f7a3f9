"""Commit and tag signature verification with SSH and PGP keys, against real git and gpg."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from libs.git import Git, MirrorCache
from libs.git.verify import VerificationError, VerifyKeys, verify_commit, verify_tag
from tests.git.signing import Signer, pgp_signer, signed_commit, ssh_signer
from tests.harness.git_fixtures import GitServer

pytestmark = pytest.mark.integration


async def mirror_of(cache: MirrorCache, url: str, refspecs: list[str]) -> Path:
    async with cache.locked(url) as mirror:
        await cache.fetch(mirror, url, refspecs)
    return mirror


async def test_ssh_and_pgp_signatures(git_server: GitServer, tmp_path: Path) -> None:
    ssh = await asyncio.to_thread(ssh_signer, tmp_path)
    pgp = await asyncio.to_thread(pgp_signer, tmp_path)
    try:
        await _check(git_server, tmp_path, ssh, pgp)
    finally:
        await asyncio.to_thread(pgp.close)


async def _check(git_server: GitServer, tmp_path: Path, ssh: Signer, pgp: Signer) -> None:
    _, url = git_server.new_repo("signed")
    by_ssh = await asyncio.to_thread(signed_commit, url, {"a": "1"}, "ssh signed", ssh)
    by_pgp = await asyncio.to_thread(signed_commit, url, {"a": "2"}, "pgp signed", pgp, tag="v1.0.0")
    unsigned = await asyncio.to_thread(signed_commit, url, {"a": "3"}, "unsigned", None)
    git = Git()
    cache = MirrorCache(tmp_path / "cache", git)
    mirror = await mirror_of(
        cache, url, ["+refs/heads/main:refs/heads/main", "+refs/tags/v1.0.0:refs/tags/v1.0.0"]
    )
    async with cache.locked(url):
        await cache.fetch(mirror, url, [by_ssh, by_pgp], depth=1)

    ssh_keys = VerifyKeys.from_secret({"author.sshpub": ssh.public.encode()})
    pgp_keys = VerifyKeys.from_secret({"author.asc": pgp.public.encode()})
    both = VerifyKeys(pgp_keys.pgp, ssh_keys.ssh)

    assert (await verify_commit(git, mirror, by_ssh, ssh_keys)).startswith("SHA256:")
    assert len(await verify_commit(git, mirror, by_pgp, both)) >= 16
    assert len(await verify_tag(git, mirror, "refs/tags/v1.0.0", pgp_keys)) >= 16

    with pytest.raises(VerificationError, match="commit"):
        await verify_commit(git, mirror, by_ssh, pgp_keys)  # signed, but by a key not given
    with pytest.raises(VerificationError):
        await verify_commit(git, mirror, by_pgp, ssh_keys)
    with pytest.raises(VerificationError):
        await verify_commit(git, mirror, unsigned, both)
    with pytest.raises(VerificationError, match="no PGP"):
        await verify_commit(git, mirror, by_ssh, VerifyKeys.from_secret({"readme.txt": b"x"}))
