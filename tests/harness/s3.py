"""Session fixture: a real S3 endpoint (moto's server) on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from libs.devservers.s3 import MotoS3Server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoS3Server]:
    """A started :class:`MotoS3Server`, shared by the session and stopped (and reaped) at its end."""
    with MotoS3Server() as server:
        yield server
