"""The one exception type of the package."""

from __future__ import annotations

from typing import Final, Literal

BUILD_FAILED: Final = "BuildFailed"
ARTIFACT_FAILED: Final = "ArtifactFailed"

Reason = Literal["BuildFailed", "ArtifactFailed"]


class FluxBuildError(Exception):
    """A Kustomization could not be rendered.

    ``reason`` is Flux's condition reason: ``ArtifactFailed`` when the path is missing or leaves
    the artifact, ``BuildFailed`` for everything else (kustomize, substitution, unsupported fields).
    The message names the file (relative to the artifact root) and line, or the object and
    variable, and never contains a variable's value.
    """

    def __init__(self, message: str, reason: Reason = BUILD_FAILED) -> None:
        super().__init__(message)
        self.reason: Reason = reason

    @property
    def message(self) -> str:
        return str(self)
