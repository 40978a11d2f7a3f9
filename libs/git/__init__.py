"""An async wrapper over the git CLI: a counted command runner, credentials that never reach a
command line, a shared cache of bare mirrors (ls-remote fast path, delta fetches, tree export),
Flux's references and revision strings, Masterminds semver constraints, and gitignore-style
exclusions with Flux's defaults.
"""

from libs.git.auth import Credentials, ProxyConfig, git_env
from libs.git.cli import Git, GitError, GitErrorKind, GitResult, classify
from libs.git.ignore import (
    DEFAULT_PATTERNS,
    IGNORE_FILE,
    VCS_PATTERNS,
    IgnoreMatcher,
    load_ignore_files,
    parse_patterns,
    source_matcher,
)
from libs.git.mirror import MirrorCache, RemoteRefs, Submodule, parse_ls_remote, resolve_submodule_url
from libs.git.refs import DEFAULT_BRANCH, GitRef, RefNotFound, Resolved, revision
from libs.git.semver import Constraint, InvalidConstraint, InvalidVersion, Version, highest
from libs.git.verify import VerificationError, VerifyKeys, verify_commit, verify_tag

__all__ = [
    "DEFAULT_BRANCH",
    "DEFAULT_PATTERNS",
    "IGNORE_FILE",
    "VCS_PATTERNS",
    "Constraint",
    "Credentials",
    "Git",
    "GitError",
    "GitErrorKind",
    "GitRef",
    "GitResult",
    "IgnoreMatcher",
    "InvalidConstraint",
    "InvalidVersion",
    "MirrorCache",
    "ProxyConfig",
    "RefNotFound",
    "RemoteRefs",
    "Resolved",
    "Submodule",
    "VerificationError",
    "VerifyKeys",
    "Version",
    "classify",
    "git_env",
    "highest",
    "load_ignore_files",
    "parse_ls_remote",
    "parse_patterns",
    "resolve_submodule_url",
    "revision",
    "source_matcher",
    "verify_commit",
    "verify_tag",
]
