"""Signed commits and tags for tests: an SSH key and a PGP key in throw-away homes."""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Signer:
    """One signing identity: ``public`` is what a verify Secret holds (``*.sshpub`` / ``*.asc``)."""

    kind: str  # "ssh" or "pgp"
    config: dict[str, str]
    env: dict[str, str]
    public: str

    def close(self) -> None:
        """Stop the gpg-agent signing started (it daemonizes, so nothing else would)."""
        if "GNUPGHOME" in self.env:
            subprocess.run(
                ["gpgconf", "--homedir", self.env["GNUPGHOME"], "--kill", "all"],
                check=False,
                capture_output=True,
            )


def ssh_signer(directory: Path) -> Signer:
    key = directory / "signing"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return Signer(
        "ssh", {"gpg.format": "ssh", "user.signingkey": str(key)}, {}, (directory / "signing.pub").read_text()
    )


def pgp_signer(directory: Path) -> Signer:
    home = directory / "gnupg"
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(
        [
            "gpg",
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            "Signer <signer@sluice.invalid>",
            "ed25519",
            "sign",
            "never",
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    public = subprocess.run(
        ["gpg", "--batch", "--armor", "--export", "signer@sluice.invalid"],
        check=True,
        capture_output=True,
        env=env,
    ).stdout.decode()
    return Signer("pgp", {"user.signingkey": "signer@sluice.invalid"}, {"GNUPGHOME": str(home)}, public)


def signed_commit(
    remote: str,
    files: dict[str, str],
    message: str,
    signer: Signer | None,
    *,
    env: dict[str, str] | None = None,
    tag: str | None = None,
) -> str:
    """Commit ``files`` on main of ``remote`` (signed by ``signer`` when given), optionally with an
    annotated tag signed the same way; push; return the commit sha."""
    full = {
        **os.environ,
        **(env or {}),
        **(signer.env if signer else {}),
        "GIT_AUTHOR_NAME": "Signer",
        "GIT_AUTHOR_EMAIL": "signer@sluice.invalid",
        "GIT_COMMITTER_NAME": "Signer",
        "GIT_COMMITTER_EMAIL": "signer@sluice.invalid",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    config: list[str] = []
    for key, value in (signer.config if signer else {}).items():
        config += ["-c", f"{key}={value}"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "work"

        def git(*args: str) -> str:
            cwd = work if work.exists() else Path(tmp)
            done = subprocess.run(
                ["git", *config, *args], cwd=cwd, env=full, check=True, capture_output=True, text=True
            )
            return done.stdout.strip()

        git("clone", "--quiet", remote, str(work))
        git("symbolic-ref", "HEAD", "refs/heads/main")  # also for a clone of an empty repository
        for name, content in files.items():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            (work / name).write_text(content)
            git("add", name)
        git("commit", "--quiet", *(["-S"] if signer else []), "-m", message)
        git("push", "--quiet", "origin", "HEAD:refs/heads/main")
        if tag:
            git("tag", *(["-s"] if signer else ["-a"]), "-m", tag, tag)
            git("push", "--quiet", "origin", f"refs/tags/{tag}")
        return git("rev-parse", "HEAD")
