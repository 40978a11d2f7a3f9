"""The build service's own settings and the address it advertises for its bundles."""

from __future__ import annotations

import pytest

from libs.common.runtime.settings import SettingsError
from services.build.app import BuildSettings, _advertised

pytestmark = pytest.mark.unit


def test_defaults_follow_flux() -> None:
    settings = BuildSettings.from_env({})
    assert settings.strict_substitutions is True  # StrictPostBuildSubstitutions is on by default
    assert settings.artifact_addr == "0.0.0.0:9091"
    assert settings.source_retry_seconds == 30.0


def test_bad_artifact_addr_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="SLUICE_ARTIFACT_ADDR"):
        BuildSettings.from_env({"SLUICE_ARTIFACT_ADDR": "nowhere"})


def test_strict_substitutions_can_be_turned_off() -> None:
    assert BuildSettings.from_env({"SLUICE_STRICT_SUBSTITUTIONS": "false"}).strict_substitutions is False


def test_a_wildcard_host_is_not_advertised() -> None:
    assert _advertised("http://127.0.0.1:9091") == "http://127.0.0.1:9091"
    advertised = _advertised("http://0.0.0.0:9091")
    assert advertised.startswith("http://") and advertised.endswith(":9091")
    assert "0.0.0.0" not in advertised
