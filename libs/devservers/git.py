"""Helpers over the real git CLI: bare repositories, seeding them, committing to them, reading them."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath

__all__ = [
    "GitError",
    "commit_files",
    "head",
    "init_bare",
    "log_messages",
    "seed_repo",
    "show_file",
]

AUTHOR_NAME = "Sluice Test"
AUTHOR_EMAIL = "test@sluice.invalid"


class GitError(RuntimeError):
    """A git command failed; the message carries its stderr."""


def _env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "GIT_AUTHOR_NAME": AUTHOR_NAME,
            "GIT_AUTHOR_EMAIL": AUTHOR_EMAIL,
            "GIT_COMMITTER_NAME": AUTHOR_NAME,
            "GIT_COMMITTER_EMAIL": AUTHOR_EMAIL,
            # The machine's own git configuration (signing, hooks, templates) stays out of it.
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
        }
    )
    if extra:
        env.update(extra)
    return env


def _git(*args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=_env(env),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise GitError(f"git {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def _verifies(ref: str, cwd: Path) -> bool:
    result = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", ref],
        cwd=cwd,
        env=_env(None),
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def init_bare(path: Path, default_branch: str = "main") -> Path:
    """Create a bare repository at ``path`` whose HEAD names ``default_branch``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _git("init", "--quiet", "--bare", f"--initial-branch={default_branch}", str(path))
    return path


def _checked_relative(name: str) -> PurePosixPath:
    rel = PurePosixPath(name)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts or rel.parts[0] == ".git":
        raise ValueError(f"not a path inside a repository: {name!r}")
    return rel


def commit_files(
    remote: str,
    files: Mapping[str, str],
    message: str,
    branch: str = "main",
    *,
    delete: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
) -> str:
    """Write ``files`` (repository path → content) and remove ``delete`` on ``branch`` of ``remote``,
    as one commit pushed to it; returns the new commit's sha.

    ``remote`` is anything git can push to (a path, ``file://`` or ``ssh://`` URL; pass the ssh
    server's ``git_env()`` as ``env``). An empty remote gets its first commit; a branch the remote
    does not have yet starts from the remote's HEAD. Every call makes exactly one commit.
    """
    with tempfile.TemporaryDirectory(prefix="sluice-git-") as tmp:
        work = Path(tmp) / "work"
        _git("clone", "--quiet", "--no-checkout", remote, str(work), env=env)
        has_branch = _verifies(f"refs/remotes/origin/{branch}", work)
        has_head = _verifies("HEAD", work)
        if has_branch:
            _git("checkout", "--quiet", "-B", branch, f"origin/{branch}", cwd=work, env=env)
        elif has_head:
            _git("checkout", "--quiet", "-b", branch, cwd=work, env=env)
        else:
            _git("symbolic-ref", "HEAD", f"refs/heads/{branch}", cwd=work, env=env)
        for name in delete:
            _git(
                "rm",
                "--quiet",
                "-r",
                "--ignore-unmatch",
                "--",
                str(_checked_relative(name)),
                cwd=work,
                env=env,
            )
        for name, content in files.items():
            target = work / _checked_relative(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
            _git("add", "--", str(target), cwd=work, env=env)
        _git("commit", "--quiet", "--allow-empty", "--no-verify", "-m", message, cwd=work, env=env)
        _git("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}", cwd=work, env=env)
        return _git("rev-parse", "HEAD", cwd=work, env=env).strip()


def seed_repo(
    remote: str,
    files: Mapping[str, str],
    message: str = "Seed repository",
    branch: str = "main",
    *,
    env: Mapping[str, str] | None = None,
) -> str:
    """Give ``remote`` its content in one commit on ``branch`` (the first commit when it is empty);
    returns the commit sha."""
    return commit_files(remote, files, message, branch=branch, env=env)


def head(bare_path: Path | str, branch: str = "main") -> str:
    """The sha ``branch`` points at in the repository at ``bare_path``."""
    return _git(
        "--git-dir", str(bare_path), "rev-parse", "--verify", f"refs/heads/{branch}^{{commit}}"
    ).strip()


def log_messages(bare_path: Path | str, branch: str = "main") -> list[str]:
    """Full commit messages on ``branch``, newest first."""
    out = _git("--git-dir", str(bare_path), "log", "--format=%B%x00", f"refs/heads/{branch}")
    return [message.strip() for message in out.split("\0") if message.strip()]


def show_file(bare_path: Path | str, path: str, branch: str = "main") -> str:
    """The content of ``path`` at the tip of ``branch``."""
    return _git("--git-dir", str(bare_path), "show", f"refs/heads/{branch}:{_checked_relative(path)}")
