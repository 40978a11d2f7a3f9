"""Flux inventory ids, written and read the way cli-utils does."""

from __future__ import annotations

import pytest

from libs.common.api.inventory import InventoryId


@pytest.mark.parametrize(
    ("text", "ident"),
    [
        ("apps_web_apps_Deployment", InventoryId("apps", "web", "apps", "Deployment")),
        ("_apps__Namespace", InventoryId("", "apps", "", "Namespace")),
        (
            "_system__viewer_rbac.authorization.k8s.io_ClusterRole",
            InventoryId("", "system:viewer", "rbac.authorization.k8s.io", "ClusterRole"),
        ),
    ],
)
def test_ids_round_trip(text: str, ident: InventoryId) -> None:
    assert InventoryId.parse(text) == ident
    assert str(ident) == text


@pytest.mark.parametrize("text", ["", "web", "a_b_c", "a_b_c_d_e", "_x_y_"])
def test_malformed_ids_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid inventory id"):
        InventoryId.parse(text)
