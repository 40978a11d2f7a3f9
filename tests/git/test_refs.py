"""Flux's reference precedence and revision strings, ls-remote parsing and submodule URLs."""

from __future__ import annotations

import pytest

from libs.git import GitRef, RefNotFound, parse_ls_remote, resolve_submodule_url, revision

pytestmark = pytest.mark.unit

A = "a" * 40
B = "b" * 40
C = "c" * 40
LS_REMOTE = (
    f"{A}\trefs/heads/main\n"
    f"{B}\trefs/tags/v1.0.0\n"
    f"{C}\trefs/tags/v1.0.0^{{}}\n"
    f"{A}\trefs/tags/v1.1.0\n"
    f"{B}\trefs/pull/420/head\n"
)


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        (GitRef(), None),  # default branch master is missing here
        (GitRef(branch="main"), f"main@sha1:{A}"),
        (GitRef(branch="main", tag="v1.0.0"), f"v1.0.0@sha1:{C}"),  # annotated tag peeled
        (GitRef(tag="v1.0.0", semver="~1.1"), f"v1.1.0@sha1:{A}"),
        (GitRef(semver=">=1.0.0", name="refs/pull/420/head"), f"refs/pull/420/head@sha1:{B}"),
    ],
)
def test_precedence_and_revisions(ref: GitRef, expected: str | None) -> None:
    remote = parse_ls_remote(LS_REMOTE)
    if expected is None:
        with pytest.raises(RefNotFound, match="refs/heads/master"):
            ref.resolve(remote)
    else:
        assert ref.resolve(remote).revision == expected


def test_commit_refs_need_no_remote() -> None:
    assert GitRef(commit=A.upper().lower()).pinned().revision == f"sha1:{A}"
    pinned = GitRef(branch="dev", commit=B, name="refs/x").pinned()
    assert (pinned.revision, pinned.remote_ref) == (f"dev@sha1:{B}", "refs/heads/dev")
    assert revision(None, "d" * 64) == "sha256:" + "d" * 64
    assert GitRef(commit=A).ls_remote_patterns() == []


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (GitRef(commit="abc123"), "full commit hash"),
        (GitRef(semver="not a range"), "spec.ref.semver"),
        (GitRef(name="main"), "refs/"),
    ],
)
def test_impossible_refs_are_rejected(ref: GitRef, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ref.validate()


@pytest.mark.parametrize(
    ("parent", "url", "expected"),
    [
        ("ssh://git@h:22/org/app.git", "../lib.git", "ssh://git@h:22/org/lib.git"),
        ("https://h/org/app.git", "./sub.git", "https://h/org/app.git/sub.git"),
        ("https://h/org/app", "../../other/x", "https://h/other/x"),
        ("https://h/org/app.git", "ssh://elsewhere/x.git", "ssh://elsewhere/x.git"),
    ],
)
def test_relative_submodule_urls(parent: str, url: str, expected: str) -> None:
    assert resolve_submodule_url(parent, url) == expected
