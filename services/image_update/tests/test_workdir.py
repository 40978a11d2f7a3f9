"""libs/git/workdir: commit and push from the mirror, with push races retried on the new head."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from libs.devservers.git import commit_files, head, log_messages, seed_repo, show_file
from libs.git import GitError, GitRef, MirrorCache
from libs.git.workdir import Author, PushTarget, SigningKey, update_and_push
from tests.harness.git_fixtures import GitServer

pytestmark = pytest.mark.integration

AUTHOR = Author("Flux Bot", "bot@example.com")


async def _run(*args: str) -> str:
    done = await asyncio.to_thread(subprocess.run, list(args), check=True, capture_output=True, text=True)
    return done.stdout


def _bump(name: str, old: str, new: str):  # type: ignore[no-untyped-def]
    async def edit(tree: Path) -> list[str]:
        path = tree / name
        text = path.read_text()
        if old not in text:
            return []
        path.write_text(text.replace(old, new))
        return [f"{old}->{new}"]

    return edit


async def test_commit_push_and_race_retried_on_new_head(git_server: GitServer, tmp_path: Path) -> None:
    bare, url = git_server.new_repo("workdir-race")
    await asyncio.to_thread(seed_repo, url, {"app.yaml": "image: app:1\n", "other.yaml": "x: 1\n"})
    cache = MirrorCache(tmp_path / "cache")
    raced = []

    async def outside_push() -> None:
        if not raced:  # someone else pushes between our commit and our push, once
            raced.append(await asyncio.to_thread(commit_files, url, {"other.yaml": "x: 2\n"}, "outside"))

    outcome = await update_and_push(
        cache,
        url,
        {},
        checkout=GitRef(branch="main"),
        push=PushTarget("main"),
        author=AUTHOR,
        edit=_bump("app.yaml", "app:1", "app:2"),
        message=lambda changes: "Update #1: " + ", ".join(changes),
        before_push=outside_push,
    )
    assert outcome.attempts == 2
    assert outcome.commit == await asyncio.to_thread(head, bare)
    assert await asyncio.to_thread(log_messages, bare) == [
        "Update #1: app:1->app:2",
        "outside",
        "Seed repository",
    ]
    assert await asyncio.to_thread(show_file, bare, "app.yaml") == "image: app:2\n"
    assert await asyncio.to_thread(show_file, bare, "other.yaml") == "x: 2\n"
    author = (
        await _run("git", "--git-dir", str(bare), "log", "-1", "--format=%an <%ae>|%cn <%ce>", "main")
    ).strip()
    assert author == "Flux Bot <bot@example.com>|Flux Bot <bot@example.com>"

    # Nothing left to change: no commit.
    again = await update_and_push(
        cache,
        url,
        {},
        checkout=GitRef(branch="main"),
        push=PushTarget("main"),
        author=AUTHOR,
        edit=_bump("app.yaml", "app:1", "app:2"),
        message=lambda c: "never",
    )
    assert again.commit is None
    assert len(await asyncio.to_thread(log_messages, bare)) == 3


async def test_push_branch_force_pushed_and_refspec(git_server: GitServer, tmp_path: Path) -> None:
    bare, url = git_server.new_repo("workdir-branch")
    await asyncio.to_thread(seed_repo, url, {"app.yaml": "image: app:1\n"})
    cache = MirrorCache(tmp_path / "cache")
    kwargs = dict(
        checkout=GitRef(branch="main"),
        push=PushTarget("auto", force=True, refspec="refs/heads/auto:refs/heads/review"),
        author=AUTHOR,
        message=lambda c: "bump",
    )
    first = await update_and_push(cache, url, {}, edit=_bump("app.yaml", "app:1", "app:2"), **kwargs)  # type: ignore[arg-type]
    assert first.commit == await asyncio.to_thread(head, bare, "auto")
    assert first.commit == await asyncio.to_thread(head, bare, "review")
    assert await asyncio.to_thread(show_file, bare, "app.yaml", "main") == "image: app:1\n"
    # The branch already holds that tree: nothing is pushed again.
    second = await update_and_push(cache, url, {}, edit=_bump("app.yaml", "app:1", "app:2"), **kwargs)  # type: ignore[arg-type]
    assert second.commit is None
    assert await asyncio.to_thread(head, bare, "auto") == first.commit


async def test_ssh_remote_and_signed_commit(git_server: GitServer, tmp_path: Path) -> None:
    bare, _ = git_server.new_repo("workdir-ssh")
    ssh_url = git_server.ssh.url_for(bare)
    env = git_server.ssh.git_env()
    await asyncio.to_thread(seed_repo, ssh_url, {"app.yaml": "image: app:1\n"}, env=env)
    key = tmp_path / "sign"
    await _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "k3y-pass", "-f", str(key))
    from libs.git import Credentials, git_env

    creds = Credentials(identity=git_server.ssh.client_private_key, known_hosts=git_server.ssh.known_hosts)
    async with git_env(ssh_url, creds) as auth:
        outcome = await update_and_push(
            MirrorCache(tmp_path / "cache"),
            ssh_url,
            auth,
            checkout=GitRef(branch="main"),
            push=PushTarget("main"),
            author=AUTHOR,
            edit=_bump("app.yaml", "app:1", "app:2"),
            message=lambda c: "signed bump",
            signing=SigningKey("ssh", key.read_text(), "k3y-pass"),
        )
    assert outcome.commit == await asyncio.to_thread(head, bare)
    signature = await _run("git", "--git-dir", str(bare), "cat-file", "commit", "main")
    assert "-----BEGIN SSH SIGNATURE-----" in signature
    signers = tmp_path / "allowed_signers"
    signers.write_text(f"bot@example.com {(tmp_path / 'sign.pub').read_text()}")
    await _run(  # fails unless the signature verifies
        "git",
        "--git-dir",
        str(bare),
        "-c",
        f"gpg.ssh.allowedSignersFile={signers}",
        "verify-commit",
        "-v",
        "main",
    )


async def test_non_race_push_failure_is_raised(git_server: GitServer, tmp_path: Path) -> None:
    bare, url = git_server.new_repo("workdir-hook")
    await asyncio.to_thread(seed_repo, url, {"app.yaml": "image: app:1\n"})
    hook = bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'policy says no' >&2\nexit 1\n")
    hook.chmod(0o755)
    with pytest.raises(GitError, match="policy says no"):
        await update_and_push(
            MirrorCache(tmp_path / "cache"),
            url,
            {},
            checkout=GitRef(branch="main"),
            push=PushTarget("main"),
            author=AUTHOR,
            edit=_bump("app.yaml", "app:1", "app:2"),
            message=lambda c: "x",
        )


async def test_openpgp_signed_commit_with_passphrase_and_push_options(
    git_server: GitServer, tmp_path: Path
) -> None:
    bare, url = git_server.new_repo("workdir-pgp")
    await asyncio.to_thread(seed_repo, url, {"app.yaml": "image: app:1\n"})
    await _run("git", "--git-dir", str(bare), "config", "receive.advertisePushOptions", "true")
    seen = tmp_path / "push-options"
    hook = bare / "hooks" / "pre-receive"
    hook.write_text(
        '#!/bin/sh\ni=0\nwhile [ "$i" -lt "${GIT_PUSH_OPTION_COUNT:-0}" ]; do\n'
        f'  eval "echo \\$GIT_PUSH_OPTION_$i" >> {seen}\n  i=$((i+1))\ndone\n'
    )
    hook.chmod(0o755)
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback", "--passphrase", "s3cret"]
    try:
        await _run(*gpg, "--quick-gen-key", "Bot <bot@example.com>", "ed25519", "sign", "never")
        secret = await _run(*gpg, "--armor", "--export-secret-keys", "bot@example.com")
        outcome = await update_and_push(
            MirrorCache(tmp_path / "cache"),
            url,
            {},
            checkout=GitRef(branch="main"),
            push=PushTarget("main", options={"merge_request.create": "", "ci.skip": "true"}),
            author=AUTHOR,
            edit=_bump("app.yaml", "app:1", "app:2"),
            message=lambda c: "signed",
            signing=SigningKey("openpgp", secret, "s3cret"),
        )
        assert outcome.commit == await asyncio.to_thread(head, bare)
        raw = await _run("git", "--git-dir", str(bare), "cat-file", "commit", "main")
        assert "-----BEGIN PGP SIGNATURE-----" in raw
        done = await asyncio.to_thread(
            subprocess.run,
            ["git", "--git-dir", str(bare), "verify-commit", "main"],
            capture_output=True,
            text=True,
            env={**os.environ, "GNUPGHOME": str(home)},
        )
        assert done.returncode == 0, done.stderr
        assert seen.read_text().split() == ["ci.skip=true", "merge_request.create"]
    finally:
        await _run("gpgconf", "--homedir", str(home), "--kill", "all")
