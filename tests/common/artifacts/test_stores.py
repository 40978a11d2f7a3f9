"""The same contract, checked against both stores: a local directory and S3 (a real moto server)."""

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from libs.common.artifacts import (
    ArtifactError,
    ArtifactNotFound,
    ArtifactStore,
    InvalidArtifactPath,
    LocalStore,
    S3Store,
    digest_of,
    gc,
    pack_files,
    store_artifact,
    store_from_url,
)
from libs.devservers.s3 import MotoS3Server

pytestmark = pytest.mark.integration

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def new_bucket() -> str:
    return f"sluice-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArtifactStore]:
    if request.param == "local":
        yield LocalStore(tmp_path / "store")
        return
    server: MotoS3Server = request.getfixturevalue("s3_server")
    yield S3Store(new_bucket(), server.endpoint_url, server.access_key, server.secret_key, create_bucket=True)


async def test_put_get_stat_exists_list_delete(store: ArtifactStore) -> None:
    path = "gitrepository/flux-system/podinfo/abc.tar.gz"
    data = pack_files({"a.yaml": b"kind: ConfigMap\n"})

    stored = await store.put(path, data)
    assert (stored.path, stored.size, stored.digest) == (path, len(data), digest_of(data))

    assert await store.get(path) == data
    assert await store.exists(path)
    stat = await store.stat(path)
    assert (stat.path, stat.size, stat.digest) == (path, len(data), digest_of(data))
    assert stat.last_modified is not None

    listed = await store.list("gitrepository/flux-system/")
    assert [(obj.path, obj.size) for obj in listed] == [(path, len(data))]
    assert listed[0].last_modified is not None

    await store.delete(path)
    assert not await store.exists(path)
    assert await store.list("gitrepository/") == []
    await store.delete(path)  # deleting what is gone is not an error


async def test_missing_objects(store: ArtifactStore) -> None:
    with pytest.raises(ArtifactNotFound, match=r"artifact not found: kind/ns/name/missing\.tar\.gz"):
        await store.get("kind/ns/name/missing.tar.gz")
    with pytest.raises(ArtifactNotFound):
        await store.stat("kind/ns/name/missing.tar.gz")
    assert not await store.exists("kind/ns/name/missing.tar.gz")
    assert await store.list("kind/") == []


async def test_put_replaces_and_list_filters_by_prefix(store: ArtifactStore) -> None:
    await store.put("kind/ns/app/1.tar.gz", b"one")
    await store.put("kind/ns/app/1.tar.gz", b"uno")
    await store.put("kind/ns/apple/2.tar.gz", b"two")
    await store.put("other/ns/app/3.tar.gz", b"three")
    assert await store.get("kind/ns/app/1.tar.gz") == b"uno"
    assert [obj.path for obj in await store.list("kind/ns/app/")] == ["kind/ns/app/1.tar.gz"]
    assert [obj.path for obj in await store.list("kind/ns/app")] == [
        "kind/ns/app/1.tar.gz",
        "kind/ns/apple/2.tar.gz",
    ]
    assert len(await store.list("")) == 3


@pytest.mark.parametrize("bad", ["../escape", "/etc/passwd", "a/../../b", "", "."])
async def test_paths_are_confined(store: ArtifactStore, bad: str) -> None:
    with pytest.raises(InvalidArtifactPath):
        await store.put(bad, b"x")
    with pytest.raises(InvalidArtifactPath):
        await store.get(bad)


async def test_store_artifact_is_content_addressed_and_idempotent(store: ArtifactStore) -> None:
    data = pack_files({"deploy.yaml": b"kind: Deployment\n"})
    digest = digest_of(data)
    artifact = await store_artifact(
        store,
        kind="GitRepository",
        namespace="flux-system",
        name="podinfo",
        data=data,
        revision="main@sha1:" + "a" * 40,
        base_url="http://source.sluice-system.svc.cluster.local./",
        metadata={"org.opencontainers.image.source": "https://example.com/podinfo"},
    )
    hex_digest = digest.removeprefix("sha256:")
    assert artifact.path == f"gitrepository/flux-system/podinfo/{hex_digest}.tar.gz"
    assert artifact.url == f"http://source.sluice-system.svc.cluster.local./{artifact.path}"
    assert artifact.digest == digest
    assert artifact.size == len(data)
    assert artifact.revision == "main@sha1:" + "a" * 40
    assert RFC3339.match(artifact.last_update_time)
    assert artifact.metadata == {"org.opencontainers.image.source": "https://example.com/podinfo"}
    assert set(artifact.model_dump(by_alias=True, exclude_none=True)) == {
        "path",
        "url",
        "revision",
        "digest",
        "lastUpdateTime",
        "size",
        "metadata",
    }
    assert await store.get(artifact.path) == data

    again = await store_artifact(
        store,
        kind="GitRepository",
        namespace="flux-system",
        name="podinfo",
        data=data,
        revision="main@sha1:" + "a" * 40,
        base_url="http://source.sluice-system.svc.cluster.local.",
    )
    assert again.path == artifact.path
    assert again.last_update_time == artifact.last_update_time
    assert [obj.path for obj in await store.list("gitrepository/")] == [artifact.path]


async def test_gc_keeps_the_newest_and_the_current(store: ArtifactStore) -> None:
    paths = []
    for i in range(4):
        artifact = await store_artifact(
            store,
            kind="Bucket",
            namespace="ns",
            name="b",
            data=f"v{i}".encode(),
            revision=str(i),
            base_url="http://x",
        )
        paths.append(artifact.path)
    await store.put("bucket/ns/bb/other.tar.gz", b"another object's")
    current = paths[0]

    deleted = await gc(store, kind="Bucket", namespace="ns", name="b", keep=1, current=current)

    remaining = [obj.path for obj in await store.list("bucket/ns/b/")]
    assert current in remaining
    assert len(remaining) == 2
    assert sorted(deleted + remaining) == sorted(paths)
    assert await store.exists("bucket/ns/bb/other.tar.gz")


# --- S3 specifics ----------------------------------------------------------------------------------


async def test_s3_missing_bucket_errors_carry_no_credentials(s3_server: MotoS3Server) -> None:
    secret = "s3cr3t-" + uuid.uuid4().hex
    store = S3Store(new_bucket(), s3_server.endpoint_url, "AKIDEXAMPLE", secret)
    with pytest.raises(ArtifactError, match="NoSuchBucket") as err:
        await store.put("kind/ns/name/x.tar.gz", b"x")
    assert secret not in str(err.value)
    assert secret not in repr(err.value)
    assert err.value.__cause__ is None
    assert secret not in repr(store)
    assert "AKIDEXAMPLE" not in repr(store)
    assert not any(secret in str(value) for value in vars(store).values())


async def test_s3_store_from_url_with_environment_credentials(s3_server: MotoS3Server) -> None:
    bucket = new_bucket()
    environ = {"AWS_ACCESS_KEY_ID": s3_server.access_key, "AWS_SECRET_ACCESS_KEY": s3_server.secret_key}
    store = store_from_url(f"s3://{bucket}?endpoint={s3_server.endpoint_url}&create=true", environ=environ)
    assert isinstance(store, S3Store)
    assert (store.bucket, store.endpoint_url, store.region) == (bucket, s3_server.endpoint_url, "us-east-1")
    assert s3_server.secret_key not in repr(store)

    await store.put("kind/ns/name/a.tar.gz", b"data")
    # Seen by an independent client: the object really is in the bucket, with its digest in metadata.
    client = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key,
        region_name="us-east-1",
    )
    head = client.head_object(Bucket=bucket, Key="kind/ns/name/a.tar.gz")
    assert head["Metadata"] == {"sha256": digest_of(b"data").removeprefix("sha256:")}
    assert head["ContentType"] == "application/gzip"

    # An object written by someone else has no recorded digest.
    client.put_object(Bucket=bucket, Key="kind/ns/name/foreign.tar.gz", Body=b"foreign")
    foreign = await store.stat("kind/ns/name/foreign.tar.gz")
    assert (foreign.size, foreign.digest) == (7, None)
    assert await store.get("kind/ns/name/foreign.tar.gz") == b"foreign"


async def test_s3_region_other_than_us_east_1(s3_server: MotoS3Server) -> None:
    store = S3Store(
        new_bucket(),
        s3_server.endpoint_url,
        s3_server.access_key,
        s3_server.secret_key,
        region="eu-west-1",
        create_bucket=True,
    )
    await store.put("kind/ns/name/a.tar.gz", b"eu")
    assert await store.get("kind/ns/name/a.tar.gz") == b"eu"
