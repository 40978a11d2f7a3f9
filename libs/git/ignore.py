"""gitignore-style exclusion, as Flux's source-controller applies it to artifacts.

Patterns are checked in order and the last one that matches decides (``!`` re-includes); a pattern
read from a ``.sourceignore`` in a sub-directory only applies below that directory. An excluded
directory is not descended, so nothing under it can be re-included (as in git).

The order Flux uses: its default exclusions (:data:`DEFAULT_PATTERNS`), then every
``.sourceignore`` in the tree (outer directories first), then ``spec.ignore`` — so ``spec.ignore``
can re-include what the defaults exclude (``!*.png``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_PATTERNS",
    "IGNORE_FILE",
    "VCS_PATTERNS",
    "IgnoreMatcher",
    "Pattern",
    "load_ignore_files",
    "parse_patterns",
    "source_matcher",
]

IGNORE_FILE = ".sourceignore"
VCS_PATTERNS = ".git/\n.gitignore\n.gitmodules\n.gitattributes\n"
DEFAULT_PATTERNS = (
    "# ignore common image and archive files\n"
    "*.jpg\n*.jpeg\n*.gif\n*.png\n*.wmv\n*.flv\n*.tar.gz\n*.zip\n"
    "# ignore CI configurations\n"
    ".github/\n.circleci/\n.travis.yml\n.gitlab-ci.yml\nappveyor.yml\n.drone.yml\n"
    "cloudbuild.yaml\ncodeship-services.yml\ncodeship-steps.yml\n"
    "# ignore release configuration\n"
    ".goreleaser.yml\n.sops.yaml\n"
    "# ignore Flux v1 configuration\n"
    ".flux.yaml\n"
)


@dataclass(frozen=True)
class Pattern:
    """One gitignore line, applying to paths under ``domain`` (POSIX parts, empty = the root)."""

    regex: re.Pattern[str]
    negate: bool
    dir_only: bool
    domain: tuple[str, ...] = ()

    def matches(self, parts: tuple[str, ...], is_dir: bool) -> bool:
        if self.dir_only and not is_dir:
            return False
        if parts[: len(self.domain)] != self.domain or len(parts) <= len(self.domain):
            return False
        return self.regex.fullmatch("/".join(parts[len(self.domain) :])) is not None


def _translate_glob(glob: str) -> str:
    """A gitignore glob (no leading/trailing slash handling) as a regular expression over a
    slash-separated relative path."""
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "*":
            if glob.startswith("**", i):
                before_ok = i == 0 or glob[i - 1] == "/"
                after = i + 2
                if before_ok and (after == n or glob[after] == "/"):
                    if after == n:
                        out.append(".*")  # trailing /**: everything inside
                        i = after
                    else:
                        out.append("(?:.*/)?")  # **/: zero or more directories
                        i = after + 1
                    continue
                out.append("[^/]*")
                i += 2
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(glob[i]))
        elif c == "[":
            j = i + 1
            if j < n and glob[j] in "!^":
                j += 1
            if j < n and glob[j] == "]":
                j += 1
            while j < n and glob[j] != "]":
                j += 1
            if j >= n:
                out.append(re.escape(c))
            else:
                body = glob[i + 1 : j]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def parse_patterns(text: str, domain: Iterable[str] = ()) -> list[Pattern]:
    """Parse gitignore-syntax text; ``domain`` is the directory (POSIX parts) the file sits in."""
    patterns: list[Pattern] = []
    where = tuple(domain)
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        # Trailing spaces are dropped unless escaped with a backslash.
        while line.endswith(" ") and not line.endswith("\\ "):
            line = line[:-1]
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        if negate or line.startswith(("\\!", "\\#")):
            line = line[1:]
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        if not line:
            continue
        anchored = "/" in line
        line = line.lstrip("/")
        regex = _translate_glob(line)
        if not anchored:
            regex = "(?:.*/)?" + regex  # a name without a slash matches at any depth
        patterns.append(Pattern(re.compile(regex, re.DOTALL), negate, dir_only, where))
    return patterns


class IgnoreMatcher:
    """Decides whether a relative POSIX path is excluded (the last matching pattern wins)."""

    def __init__(self, patterns: Iterable[Pattern]) -> None:
        self.patterns = list(patterns)

    def match(self, path: str, is_dir: bool | None = None) -> bool:
        """``path`` relative to the root; a trailing ``/`` marks a directory."""
        if is_dir is None:
            is_dir = path.endswith("/")
        parts = tuple(p for p in path.strip("/").split("/") if p)
        if not parts:
            return False
        for pattern in reversed(self.patterns):
            if pattern.matches(parts, is_dir):
                return not pattern.negate
        return False

    __call__ = match


def load_ignore_files(root: Path, name: str = IGNORE_FILE) -> list[Pattern]:
    """Patterns from every ``name`` file under ``root``, outer directories first (blocking: call
    it from a thread). Directories excluded by outer files are still searched, as Flux does;
    a ``name`` that is a symlink is not read (it could point anywhere on the machine)."""
    found: list[Pattern] = []
    for directory, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = Path(directory).relative_to(root)
        dirnames[:] = [d for d in dirnames if not (rel == Path(".") and d == ".git")]
        if name in filenames and not (Path(directory) / name).is_symlink():
            domain = () if rel == Path(".") else rel.parts
            text = (Path(directory) / name).read_text(encoding="utf-8", errors="replace")
            found.extend(parse_patterns(text, domain))
    return found


def source_matcher(root: Path, ignore: str | None = None) -> IgnoreMatcher:
    """Flux's matcher for an artifact of the tree at ``root``: the VCS and default exclusions,
    the ``.sourceignore`` files, then ``ignore`` (``spec.ignore``). Blocking: call from a thread."""
    patterns = parse_patterns(VCS_PATTERNS) + parse_patterns(DEFAULT_PATTERNS)
    patterns += load_ignore_files(root)
    if ignore:
        patterns += parse_patterns(ignore)
    return IgnoreMatcher(patterns)
