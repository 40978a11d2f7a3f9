"""gitignore-style exclusion with Flux's defaults, .sourceignore files and spec.ignore."""

from __future__ import annotations

from pathlib import Path

import pytest

from libs.git.ignore import IgnoreMatcher, parse_patterns, source_matcher

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("patterns", "path", "excluded"),
    [
        ("*.log", "a/b/c.log", True),
        ("*.log", "c.log/", True),
        ("/top.txt", "top.txt", True),
        ("/top.txt", "sub/top.txt", False),
        ("build/", "build/", True),
        ("build/", "build", False),
        ("build/", "x/build/", True),
        ("docs/*.md", "docs/a.md", True),
        ("docs/*.md", "docs/x/a.md", False),
        ("**/tmp", "a/b/tmp", True),
        ("a/**/z", "a/z", True),
        ("a/**/z", "a/b/c/z", True),
        ("a/**", "a/b/c", True),
        ("*.yaml\n!keep.yaml", "keep.yaml", False),
        ("*.yaml\n!keep.yaml", "other.yaml", True),
        ("file[0-9].txt", "file3.txt", True),
        ("file[!0-9].txt", "file3.txt", False),
        ("\\#hash", "#hash", True),
        ("# comment", "# comment", False),
        ("f?o", "foo", True),
        ("f?o", "f/o", False),
    ],
)
def test_gitignore_semantics(patterns: str, path: str, excluded: bool) -> None:
    assert IgnoreMatcher(parse_patterns(patterns)).match(path) is excluded


def test_patterns_from_a_subdirectory_apply_only_below_it() -> None:
    matcher = IgnoreMatcher(parse_patterns("*.txt\n/only-here", ("sub",)))
    assert matcher.match("sub/a.txt")
    assert matcher.match("sub/deeper/a.txt")
    assert not matcher.match("a.txt")
    assert matcher.match("sub/only-here")
    assert not matcher.match("sub/deeper/only-here")


def test_source_matcher_has_flux_defaults_sourceignore_and_spec_ignore(tmp_path: Path) -> None:
    (tmp_path / ".sourceignore").write_text("secrets/\n")
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / ".sourceignore").write_text("*.md\n")
    matcher = source_matcher(tmp_path)
    for path in (
        ".git/",
        ".github/",
        "logo.png",
        "x/y.tar.gz",
        ".sops.yaml",
        ".gitignore",
        "secrets/",
        "apps/a.md",
    ):
        assert matcher.match(path), path
    for path in ("apps/", "apps/deploy.yaml", "README.md", ".sourceignore"):
        assert not matcher.match(path), path
    reincluded = source_matcher(tmp_path, "!*.png\n*.yaml\n")
    assert not reincluded.match("logo.png")
    assert reincluded.match("apps/deploy.yaml")
