"""Signature verification of commits and tags with the keys of a Flux ``verify.secretRef``.

Keys come from the Secret as Flux reads them: ``*.asc`` are armored PGP public keys, ``*.sshpub``
hold SSH public keys (authorized_keys format, one per line), keys without a suffix are PGP
keyrings. Verification runs ``git verify-commit`` / ``git verify-tag`` against a throw-away
GnuPG home and an allowed-signers file in a private temporary directory, so the machine's own
keyrings and trust never take part.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from libs.git.cli import Git, GitError

__all__ = ["VerificationError", "VerifyKeys", "verify_commit", "verify_tag"]


class VerificationError(GitError):
    def __init__(self, message: str) -> None:
        super().__init__(message, "other")


@dataclass(frozen=True)
class VerifyKeys:
    pgp: tuple[bytes, ...] = ()
    ssh: tuple[str, ...] = field(default=())

    @classmethod
    def from_secret(cls, data: Mapping[str, bytes]) -> VerifyKeys:
        pgp: list[bytes] = []
        ssh: list[str] = []
        for name in sorted(data):
            value = data[name]
            if name.endswith(".sshpub"):
                ssh.extend(
                    line.strip()
                    for line in value.decode("utf-8", errors="replace").splitlines()
                    if line.strip() and not line.startswith("#")
                )
            elif name.endswith(".asc") or "." not in name:
                pgp.append(value)
        return cls(tuple(pgp), tuple(ssh))

    def __bool__(self) -> bool:
        return bool(self.pgp or self.ssh)


async def _prepare(directory: Path, keys: VerifyKeys) -> dict[str, str]:
    gnupg = directory / "gnupg"
    await asyncio.to_thread(gnupg.mkdir, mode=0o700)
    env = {"GNUPGHOME": str(gnupg)}
    for key in keys.pgp:
        proc = await asyncio.create_subprocess_exec(
            "gpg",
            "--batch",
            "--quiet",
            "--import",
            env={**os.environ, **env},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate(key)
        if proc.returncode != 0:
            raise VerificationError(f"unable to read PGP key: {err.decode(errors='replace').strip()[-200:]}")
    allowed = directory / "allowed_signers"
    lines = [f'* namespaces="git" {key}' for key in keys.ssh]
    await asyncio.to_thread(allowed.write_text, "\n".join(lines) + "\n")
    env.update(
        {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "gpg.ssh.allowedSignersFile",
            "GIT_CONFIG_VALUE_0": str(allowed),
        }
    )
    return env


_PGP_KEY = re.compile(r"\[GNUPG:\] VALIDSIG ([0-9A-F]+)")
_SSH_KEY = re.compile(r'Good "git" signature .*? with (\S+) key (\S+)')


def _key_of(output: str) -> str:
    if m := _PGP_KEY.search(output):
        return m.group(1)
    if m := _SSH_KEY.search(output):
        return m.group(2)
    return "unknown"


async def _verify(git: Git, mirror: Path, command: str, target: str, keys: VerifyKeys, what: str) -> str:
    if not keys:
        raise VerificationError(f"no PGP (.asc) or SSH (.sshpub) public keys to verify the {what} with")
    directory = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="sluice-verify-"))
    try:
        env = await _prepare(directory, keys)
        try:
            result = await git.run(["--git-dir", str(mirror), command, "--raw", target], env=env, what=what)
        except GitError as exc:
            raise VerificationError(f"signature verification of {what} failed: {exc}") from None
        return _key_of(result.stderr + result.text)
    finally:
        if keys.pgp:
            await _stop_agent(directory / "gnupg")
        await asyncio.to_thread(shutil.rmtree, directory, True)


async def _stop_agent(home: Path) -> None:
    """gpg may have started a gpg-agent for the throw-away home; it daemonizes, so stop it."""
    proc = await asyncio.create_subprocess_exec(
        "gpgconf",
        "--homedir",
        str(home),
        "--kill",
        "all",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await proc.wait()


async def verify_commit(git: Git, mirror: Path, commit: str, keys: VerifyKeys) -> str:
    """Verify the signature of ``commit``; returns the key's fingerprint. Raise
    :class:`VerificationError` when it is unsigned or signed by a key not in ``keys``."""
    return await _verify(git, mirror, "verify-commit", commit, keys, f"commit '{commit}'")


async def verify_tag(git: Git, mirror: Path, tag_ref: str, keys: VerifyKeys) -> str:
    """Verify the signature of the annotated tag ``tag_ref`` (``refs/tags/v1``)."""
    name = tag_ref.removeprefix("refs/tags/")
    return await _verify(git, mirror, "verify-tag", tag_ref, keys, f"tag '{name}'")
