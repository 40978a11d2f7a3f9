"""LocalStore specifics (confinement through symlinks, atomic writes, mtimes) and store_from_url."""

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from libs.common.artifacts import (
    InvalidArtifactPath,
    InvalidStoreURL,
    LocalStore,
    S3Store,
    artifact_path,
    artifact_url,
    digest_of,
    gc,
    store_artifact,
    store_from_url,
)

pytestmark = pytest.mark.unit

OLD = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()


async def test_symlink_inside_the_store_cannot_lead_out(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    store = LocalStore(tmp_path / "store")
    os.symlink(outside, tmp_path / "store" / "gitrepository")
    with pytest.raises(InvalidArtifactPath, match="resolves outside the store"):
        await store.get("gitrepository/secret.txt")
    with pytest.raises(InvalidArtifactPath, match="resolves outside the store"):
        await store.put("gitrepository/new.tar.gz", b"x")
    with pytest.raises(InvalidArtifactPath, match="resolves outside the store"):
        await store.list("gitrepository/")
    with pytest.raises(InvalidArtifactPath, match="resolves outside the store"):
        await store.delete("gitrepository/secret.txt")
    # Listing the whole store does not follow the link either.
    assert await store.list("") == []
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


async def test_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    for i in range(3):
        await store.put("kind/ns/name/a.tar.gz", f"v{i}".encode())
    assert sorted(p.name for p in (tmp_path / "kind/ns/name").iterdir()) == ["a.tar.gz"]
    assert (tmp_path / "kind/ns/name/a.tar.gz").stat().st_mode & 0o777 == 0o644


async def test_listing_skips_in_flight_temporary_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    await store.put("kind/ns/name/a.tar.gz", b"a")
    (tmp_path / "kind/ns/name/.sluice-tmp-abc").write_bytes(b"partial")
    assert [obj.path for obj in await store.list("kind/")] == ["kind/ns/name/a.tar.gz"]


async def test_storing_known_content_again_writes_nothing(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    data = b"tarball"
    first = await store_artifact(
        store, kind="OCIRepository", namespace="ns", name="app", data=data, revision="v1", base_url="http://h"
    )
    file = tmp_path / first.path
    os.utime(file, (OLD, OLD))
    inode = file.stat().st_ino

    again = await store_artifact(
        store,
        kind="OCIRepository",
        namespace="ns",
        name="app",
        data=data,
        revision="v1@sha256:x",
        base_url="http://h",
    )
    assert again.last_update_time == "2024-01-02T03:04:05Z"
    assert again.revision == "v1@sha256:x"
    assert file.stat().st_ino == inode
    assert file.stat().st_mtime == OLD


async def test_a_damaged_stored_artifact_is_rewritten(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    data = b"good content"
    path = artifact_path("Bucket", "ns", "b", digest_of(data))
    (tmp_path / path).parent.mkdir(parents=True)
    (tmp_path / path).write_bytes(b"bad content!")  # same size, wrong bytes
    await store_artifact(
        store, kind="Bucket", namespace="ns", name="b", data=data, revision="r", base_url="http://h"
    )
    assert (tmp_path / path).read_bytes() == data


async def test_gc_keeps_the_two_newest_and_the_current(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    paths = []
    for i in range(5):
        artifact = await store_artifact(
            store,
            kind="GitRepository",
            namespace="ns",
            name="repo",
            data=f"rev{i}".encode(),
            revision=f"r{i}",
            base_url="h",
        )
        # Stored one minute apart, oldest first.
        os.utime(tmp_path / artifact.path, (OLD + 60 * i, OLD + 60 * i))
        paths.append(artifact.path)
    await store.put("gitrepository/ns/repo/nested/keep.tar.gz", b"not an artifact of this object")
    await store.put("gitrepository/ns/repo2/x.tar.gz", b"another object")

    deleted = await gc(store, kind="GitRepository", namespace="ns", name="repo", current=paths[1])

    assert sorted(deleted) == sorted([paths[0], paths[2]])
    remaining = {obj.path for obj in await store.list("gitrepository/")}
    assert remaining == {
        paths[1],
        paths[3],
        paths[4],
        "gitrepository/ns/repo/nested/keep.tar.gz",
        "gitrepository/ns/repo2/x.tar.gz",
    }
    # Nothing left to collect.
    assert await gc(store, kind="GitRepository", namespace="ns", name="repo", current=paths[1]) == []


@pytest.mark.parametrize(
    ("kind", "namespace", "name"), [("Kind", "a/b", "n"), ("Kind", "ns", ".."), ("", "ns", "n")]
)
def test_artifact_path_rejects_unsafe_segments(kind: str, namespace: str, name: str) -> None:
    with pytest.raises(InvalidArtifactPath):
        artifact_path(kind, namespace, name, "sha256:abc")


def test_artifact_url_joins_cleanly() -> None:
    assert artifact_url("http://h:9090/", "a/b c/d.tar.gz") == "http://h:9090/a/b%20c/d.tar.gz"
    assert artifact_url("http://h", "/a//d.tar.gz".lstrip("/")) == "http://h/a/d.tar.gz"


# --- store_from_url --------------------------------------------------------------------------------


def test_store_from_url_file_and_plain_paths(tmp_path: Path) -> None:
    from_file_url = store_from_url(f"file://{tmp_path}/a")
    assert isinstance(from_file_url, LocalStore)
    assert from_file_url.root == tmp_path / "a"
    plain = store_from_url(str(tmp_path / "b"))
    assert isinstance(plain, LocalStore)
    assert plain.root == tmp_path / "b"
    assert (tmp_path / "b").is_dir()


def test_store_from_url_s3_parameters() -> None:
    store = store_from_url(
        "s3://artifacts?endpoint=http://minio:9000&region=eu-central-1&create=true",
        access_key="AKIDKWARG",
        secret_key="kwarg-secret",
        environ={"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "env-secret"},
    )
    assert isinstance(store, S3Store)
    assert (store.bucket, store.endpoint_url, store.region) == (
        "artifacts",
        "http://minio:9000",
        "eu-central-1",
    )
    assert (
        repr(store) == "S3Store(bucket='artifacts', endpoint_url='http://minio:9000', region='eu-central-1')"
    )

    defaulted = store_from_url("s3://artifacts", environ={"AWS_REGION": "ap-south-1"})
    assert isinstance(defaulted, S3Store)
    assert (defaulted.endpoint_url, defaulted.region) == (None, "ap-south-1")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://AKIDLEAK:leaked-secret@bucket?endpoint=http://x", "must not carry credentials"),
        ("s3://bucket?endpoint=http://x&token=leaked-secret", "unknown parameter 'token'"),
        ("s3://bucket?create=leaked-secret", "'create' must be true or false"),
        ("s3://bucket/prefix?endpoint=http://x", "key prefixes are not supported"),
        ("s3://bucket?endpoint=ftp://leaked-secret@x", "must be an http"),
        ("ftp://user:leaked-secret@host/dir", "unsupported artifact store URL 'ftp://host/dir'"),
        ("file://otherhost/dir?x=leaked-secret", "must not name a host"),
    ],
)
def test_store_from_url_errors_never_repeat_secrets(url: str, message: str) -> None:
    with pytest.raises(InvalidStoreURL, match=message) as err:
        store_from_url(url, environ={})
    assert "leaked-secret" not in str(err.value)
    assert "AKIDLEAK" not in str(err.value)
