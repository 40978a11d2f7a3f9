"""Decoding a Secret's values, shared by every service that reads credentials."""

from __future__ import annotations

import base64

from libs.common.kube import secret_data


def test_data_is_decoded_and_string_data_wins_as_the_api_server_merges_it() -> None:
    secret = {
        "data": {
            "username": base64.b64encode(b"git").decode(),
            "password": base64.b64encode(b"old").decode(),
        },
        "stringData": {"password": "new"},
    }
    assert secret_data(secret) == {"username": b"git", "password": b"new"}


def test_a_value_that_is_not_base64_is_left_out() -> None:
    assert secret_data({"data": {"bad": "%%%", "ok": base64.b64encode(b"x").decode()}}) == {"ok": b"x"}
    assert secret_data({}) == {}
