import gzip
import io
import os
import tarfile
import time
from pathlib import Path

import pytest

from libs.common.artifacts import ArchiveError, digest_of, pack_dir, pack_files, safe_extract

pytestmark = pytest.mark.unit

MiB = 1024 * 1024


# --- helpers ---------------------------------------------------------------------------------------


def make_tree(root: Path) -> Path:
    (root / "deploy" / "base").mkdir(parents=True)
    (root / "deploy" / "base" / "deployment.yaml").write_text("kind: Deployment\n")
    (root / "deploy" / "kustomization.yaml").write_text("resources: [base]\n")
    (root / "scripts").mkdir()
    script = root / "scripts" / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o700)
    (root / "empty").mkdir()
    os.symlink("deploy/kustomization.yaml", root / "link.yaml")
    (root / "README.md").write_text("# demo\n")
    return root


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return tar.getmembers()


def evil_tar(*entries: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    """A tar.gz built entry by entry, with whatever names, types and links the test wants."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for info, content in entries:
            if content is not None:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
            else:
                tar.addfile(info)
    return buffer.getvalue()


def file_entry(name: str, content: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), content


def link_entry(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def special_entry(name: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    return info, None


class ZeroReader(io.RawIOBase):
    """``size`` zero bytes, produced on demand so a huge entry never sits in memory."""

    def __init__(self, size: int) -> None:
        self.remaining = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        count = min(len(buffer), self.remaining)
        buffer[:count] = b"\0" * count
        self.remaining -= count
        return count


def tree_listing(root: Path) -> dict[str, str]:
    listing: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            listing[rel] = "-> " + os.readlink(path)
        elif path.is_dir():
            listing[rel] = f"dir {path.stat().st_mode & 0o777:o}"
        else:
            listing[rel] = f"{path.stat().st_mode & 0o777:o} {path.read_text()}"
    return listing


# --- packing ---------------------------------------------------------------------------------------


def test_digest_of_is_prefixed_sha256() -> None:
    assert digest_of(b"abc") == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_same_tree_twice_gives_the_same_digest(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "src")
    first = pack_dir(root)
    assert digest_of(pack_dir(root)) == digest_of(first)


def test_mtimes_permissions_and_creation_order_do_not_change_the_digest(tmp_path: Path) -> None:
    one = make_tree(tmp_path / "one")
    baseline = digest_of(pack_dir(one))

    # Touch everything (different mtimes), widen group/other bits: both are normalised away.
    for path in one.rglob("*"):
        os.utime(path, (1_000_000, 1_000_000), follow_symlinks=False)
    (one / "README.md").chmod(0o666)
    (one / "deploy").chmod(0o775)
    assert digest_of(pack_dir(one)) == baseline

    # The same content written in a different order, later, in another directory.
    two = tmp_path / "two"
    two.mkdir()
    (two / "README.md").write_text("# demo\n")
    (two / "empty").mkdir()
    os.symlink("deploy/kustomization.yaml", two / "link.yaml")
    (two / "scripts").mkdir()
    (two / "scripts" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (two / "scripts" / "run.sh").chmod(0o755)
    (two / "deploy" / "base").mkdir(parents=True)
    (two / "deploy" / "kustomization.yaml").write_text("resources: [base]\n")
    (two / "deploy" / "base" / "deployment.yaml").write_text("kind: Deployment\n")
    assert digest_of(pack_dir(two)) == baseline

    (two / "README.md").write_text("# changed\n")
    assert digest_of(pack_dir(two)) != baseline


def test_archive_entries_are_sorted_and_normalised(tmp_path: Path) -> None:
    data = pack_dir(make_tree(tmp_path / "src"))
    assert data[4:8] == b"\0\0\0\0"  # gzip header mtime
    entries = members(data)
    names = [m.name for m in entries]
    assert names == sorted(names)
    assert names == [
        "README.md",
        "deploy",
        "deploy/base",
        "deploy/base/deployment.yaml",
        "deploy/kustomization.yaml",
        "empty",
        "link.yaml",
        "scripts",
        "scripts/run.sh",
    ]
    for m in entries:
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", "")
    modes = {m.name: m.mode for m in entries if not m.issym()}
    assert modes["README.md"] == 0o644
    assert modes["scripts/run.sh"] == 0o755
    assert modes["deploy"] == 0o755
    link = next(m for m in entries if m.name == "link.yaml")
    assert link.issym() and link.linkname == "deploy/kustomization.yaml"


def test_exclude_gets_posix_paths_and_excluded_directories_are_not_descended(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "src")
    (root / ".git" / "objects").mkdir(parents=True)
    (root / ".git" / "objects" / "pack").write_text("x")
    (root / "deploy" / "base" / "secret.env").write_text("TOKEN=1")
    seen: list[str] = []

    def exclude(rel: str) -> bool:
        seen.append(rel)
        return rel == ".git/" or rel.endswith(".env")

    names = [m.name for m in members(pack_dir(root, exclude=exclude))]
    assert ".git/" in seen and "deploy/" in seen and "deploy/base/" in seen
    assert "deploy/base/deployment.yaml" in seen and "link.yaml" in seen
    assert not any(rel.startswith(".git/") and rel != ".git/" for rel in seen)
    assert ".git" not in names
    assert "deploy/base/secret.env" not in names
    assert "deploy/base/deployment.yaml" in names


@pytest.mark.parametrize(
    ("target", "reason"),
    [("/etc/passwd", "absolute"), ("../outside.txt", "leaves the root"), ("sub/../../x", "leaves the root")],
)
def test_pack_dir_rejects_symlinks_leaving_the_root(tmp_path: Path, target: str, reason: str) -> None:
    root = tmp_path / "src"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "outside.txt").write_text("secret")
    os.symlink(target, root / "escape")
    with pytest.raises(ArchiveError, match=reason) as err:
        pack_dir(root)
    assert "escape" in str(err.value)


def test_pack_dir_rejects_a_symlink_that_escapes_through_another_symlink(tmp_path: Path) -> None:
    root = tmp_path / "src"
    root.mkdir()
    os.symlink(str(tmp_path), root / "up")  # excluded itself, but still on disk
    os.symlink("up/x", root / "via")
    with pytest.raises(ArchiveError, match="resolves outside the root"):
        pack_dir(root, exclude=lambda rel: rel == "up")


def test_pack_files_is_deterministic_and_validates_names() -> None:
    one = pack_files({"b.yaml": b"b", "a/x.yaml": b"x"})
    two = pack_files({"a/x.yaml": b"x", "b.yaml": b"b"})
    assert one == two
    assert [m.name for m in members(one)] == ["a/x.yaml", "b.yaml"]
    with pytest.raises(ArchiveError, match=r"\.\."):
        pack_files({"../x": b""})
    with pytest.raises(ArchiveError, match="absolute"):
        pack_files({"/x": b""})


# --- extraction ------------------------------------------------------------------------------------


def test_pack_then_extract_round_trips(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "src")
    dest = tmp_path / "out"
    safe_extract(pack_dir(root), dest)
    assert tree_listing(dest) == {
        **tree_listing(root),
        # Modes are normalised on the way: 0700 became 0755.
        "scripts/run.sh": "755 #!/bin/sh\necho hi\n",
    }
    assert (dest / "link.yaml").read_text() == "resources: [base]\n"


def test_extract_accepts_a_leading_dot_slash_and_plain_tar(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("./dir/file.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"ok"))
    safe_extract(buffer.getvalue(), tmp_path)
    assert (tmp_path / "dir" / "file.txt").read_bytes() == b"ok"


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        pytest.param([file_entry("../x")], r"'\.\./x': path traversal", id="dotdot"),
        pytest.param([file_entry("a/../../x")], r"'a/\.\./\.\./x': path traversal", id="nested-dotdot"),
        pytest.param([file_entry("/etc/x")], r"'/etc/x': absolute path", id="absolute"),
        pytest.param(
            [link_entry("root", "/")], r"'root': symlink to absolute path '/'", id="symlink-to-root"
        ),
        pytest.param(
            [link_entry("up", "../..")],
            r"'up': symlink target '\.\./\.\.' leaves the destination",
            id="symlink-up",
        ),
        pytest.param(
            [link_entry("a/b/up", "../../../etc")],
            r"'a/b/up': symlink target .* leaves",
            id="deep-symlink-up",
        ),
        pytest.param(
            [link_entry("hard", "../../etc/passwd", tarfile.LNKTYPE)],
            r"'hard': hard link to '\.\./\.\./etc/passwd' leaves the destination",
            id="hardlink-out",
        ),
        pytest.param(
            [link_entry("hard", "/etc/passwd", tarfile.LNKTYPE)],
            r"'hard': hard link to '/etc/passwd' leaves",
            id="hardlink-absolute",
        ),
        pytest.param(
            [link_entry("hard", "missing.txt", tarfile.LNKTYPE)],
            r"'hard': hard link to 'missing.txt', which is not a regular file",
            id="hardlink-unknown",
        ),
        pytest.param([special_entry("tty", tarfile.CHRTYPE)], r"'tty': character device", id="chardev"),
        pytest.param([special_entry("disk", tarfile.BLKTYPE)], r"'disk': block device", id="blockdev"),
        pytest.param([special_entry("pipe", tarfile.FIFOTYPE)], r"'pipe': FIFO", id="fifo"),
        pytest.param(
            [link_entry("link", "sub"), file_entry("link/x")],
            r"'link/x': path goes through symlink 'link'",
            id="write-through-symlink",
        ),
    ],
)
def test_safe_extract_rejects(
    tmp_path: Path, entries: list[tuple[tarfile.TarInfo, bytes | None]], message: str
) -> None:
    dest = tmp_path / "dest"
    with pytest.raises(ArchiveError, match=message):
        safe_extract(evil_tar(*entries), dest)
    # Nothing was written outside the destination.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest"]


def test_symlink_escaping_through_another_archive_symlink_is_caught_and_removed(tmp_path: Path) -> None:
    # Each link looks harmless on its own: 'deep' -> '.', 'p' -> 'deep/../secret' (lexically 'secret').
    # Together, 'p' resolves to <dest>/../secret.
    (tmp_path / "secret").write_text("outside")
    dest = tmp_path / "dest"
    data = evil_tar(link_entry("p", "deep/../secret"), link_entry("deep", "."))
    with pytest.raises(ArchiveError, match=r"'p': symlink target 'deep/\.\./secret' resolves outside"):
        safe_extract(data, dest)
    assert not os.path.lexists(dest / "p")
    assert not os.path.lexists(dest / "deep")


def test_existing_symlink_in_the_destination_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(outside, dest / "evil")
    with pytest.raises(ArchiveError, match="'evil/x': parent 'evil' is a symlink"):
        safe_extract(evil_tar(file_entry("evil/x", b"pwned")), dest)
    assert list(outside.iterdir()) == []


def test_hardlink_to_an_earlier_file_is_copied(tmp_path: Path) -> None:
    data = evil_tar(file_entry("a.txt", b"hello"), link_entry("b.txt", "a.txt", tarfile.LNKTYPE))
    safe_extract(data, tmp_path)
    assert (tmp_path / "b.txt").read_bytes() == b"hello"


def test_gzip_bomb_is_stopped_from_the_entry_header_before_inflating(tmp_path: Path) -> None:
    size = 256 * MiB
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=1) as gz,
        tarfile.open(fileobj=gz, mode="w") as tar,
    ):
        small = tarfile.TarInfo("small.txt")
        small.size = 4
        tar.addfile(small, io.BytesIO(b"fine"))
        info = tarfile.TarInfo("bomb.bin")
        info.size = size
        # Only the header and the first block are compressed: the content is never produced here,
        # so the archive stays tiny and the test fast. Its header still declares 256 MiB.
        tar.fileobj.write(info.tobuf())
    data = buffer.getvalue()
    assert len(data) < 64 * 1024

    started = time.monotonic()
    with pytest.raises(ArchiveError, match=r"'bomb\.bin': archive content exceeds 1048576 bytes"):
        safe_extract(data, tmp_path / "dest", max_bytes=MiB)
    assert time.monotonic() - started < 2
    assert (tmp_path / "dest" / "small.txt").read_bytes() == b"fine"
    assert not (tmp_path / "dest" / "bomb.bin").exists()


def test_real_gzip_bomb_over_the_limit_writes_nothing_of_it(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9) as gz,
        tarfile.open(fileobj=gz, mode="w") as tar,
    ):
        info = tarfile.TarInfo("zeros.bin")
        info.size = 32 * MiB
        tar.addfile(info, ZeroReader(info.size))
    data = buffer.getvalue()
    assert len(data) < 64 * 1024  # 32 MiB of zeros compress ~1000:1

    with pytest.raises(ArchiveError, match=r"'zeros\.bin': archive content exceeds"):
        safe_extract(data, tmp_path / "dest", max_bytes=4 * MiB)
    assert not (tmp_path / "dest" / "zeros.bin").exists()


def test_oversized_metadata_is_stopped_while_streaming(tmp_path: Path) -> None:
    # A 4 MiB PAX header is not file content; the metered stream stops it all the same.
    info = tarfile.TarInfo("tiny.txt")
    info.pax_headers = {"comment": "a" * (4 * MiB)}
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb") as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ArchiveError, match="decompresses to more than"):
        safe_extract(buffer.getvalue(), tmp_path / "dest", max_bytes=1024, max_files=10)


def test_too_many_files(tmp_path: Path) -> None:
    data = pack_files({f"f{i:02}.txt": b"x" for i in range(11)})
    safe_extract(data, tmp_path / "ok", max_files=11)
    with pytest.raises(ArchiveError, match=r"'f10\.txt': archive has more than 10 entries"):
        safe_extract(data, tmp_path / "dest", max_files=10)


def test_corrupt_archive_is_an_archive_error(tmp_path: Path) -> None:
    data = pack_files({"a.txt": b"a" * 10_000})
    with pytest.raises(ArchiveError, match="corrupt archive"):
        safe_extract(data[: len(data) // 2], tmp_path)
