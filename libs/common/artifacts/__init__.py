"""Artifacts: deterministic tarballs, the store they live in (S3 or a local directory), and HTTP serving.

Source packs what it fetched with :func:`pack_dir`, stores it with :func:`store_artifact` (which
returns the Flux ``Artifact`` for ``status.artifact``) and serves the store with
:func:`artifact_app`; consumers download with :func:`fetch_artifact` and unpack with
:func:`safe_extract`. :func:`gc` applies Flux's retention of the newest artifacts per object.
"""

from libs.common.artifacts.archive import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_FILES,
    digest_of,
    pack_dir,
    pack_files,
    safe_extract,
)
from libs.common.artifacts.errors import (
    ArchiveError,
    ArtifactError,
    ArtifactNotFound,
    InvalidArtifactPath,
    InvalidStoreURL,
)
from libs.common.artifacts.local import LocalStore
from libs.common.artifacts.objects import ArtifactStore, StoredObject, clean_path
from libs.common.artifacts.s3 import S3Store
from libs.common.artifacts.server import add_artifact_routes, artifact_app, fetch_artifact
from libs.common.artifacts.store import (
    artifact_dir,
    artifact_path,
    artifact_url,
    gc,
    store_artifact,
    store_from_url,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_FILES",
    "ArchiveError",
    "ArtifactError",
    "ArtifactNotFound",
    "ArtifactStore",
    "InvalidArtifactPath",
    "InvalidStoreURL",
    "LocalStore",
    "S3Store",
    "StoredObject",
    "add_artifact_routes",
    "artifact_app",
    "artifact_dir",
    "artifact_path",
    "artifact_url",
    "clean_path",
    "digest_of",
    "fetch_artifact",
    "gc",
    "pack_dir",
    "pack_files",
    "safe_extract",
    "store_artifact",
    "store_from_url",
]
