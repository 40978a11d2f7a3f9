"""GitRepository (`source.toolkit.fluxcd.io/v1`)."""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import ConfigDict, Field, model_validator

from libs.common.api.meta import (
    AGE_COLUMN,
    CATEGORY_SOURCES,
    READY_COLUMN,
    STATUS_COLUMN,
    SUBSTITUTE_DISABLED,
    Artifact,
    Duration,
    FluxModel,
    FluxObject,
    FluxStatus,
    LocalObjectReference,
    PrinterColumn,
    Timeout,
    cel_rules,
    column,
    rule_error,
)

SOURCE_GROUP = "source.toolkit.fluxcd.io"
SOURCE_VERSION = "v1"


class GitRepositoryRef(FluxModel):
    """The Git reference to check out; precedence branch < tag < semver < name < commit."""

    branch: str | None = None
    tag: str | None = None
    semver: str | None = None
    """A semver range over the repository's tags."""
    name: str | None = None
    """Any Git reference, e.g. `refs/pull/420/head`."""
    commit: str | None = None


class GitRepositoryVerification(FluxModel):
    """Verification of commit and/or tag signatures with the keys in `secretRef`."""

    mode: Literal["HEAD", "head", "Tag", "TagAndHEAD"] = "HEAD"
    secret_ref: LocalObjectReference


class GitRepositoryInclude(FluxModel):
    """Copies another GitRepository's artifact into this one's."""

    repository: LocalObjectReference
    from_path: str | None = None
    to_path: str | None = None
    """Destination path; defaults to the included repository's name."""


class GitRepositorySpec(FluxModel):
    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                "!has(self.serviceAccountName) || (has(self.provider) && (self.provider == 'azure' || self.provider == 'aws'))",
                "serviceAccountName can only be set when provider is 'azure' or 'aws'",
            )
        )
    )

    url: str = Field(pattern=r"^(http|https|ssh|file)://.*$")
    """Flux admits http, https and ssh; Sluice also admits file:// for repositories on the
    service's own filesystem (the local run's Git root), a strict superset of Flux's pattern."""
    secret_ref: LocalObjectReference | None = None
    provider: Literal["generic", "aws", "azure", "github"] = "generic"
    """Authentication provider for OIDC / GitHub App authentication."""
    service_account_name: str | None = None
    interval: Duration
    timeout: Timeout = "60s"
    ref: GitRepositoryRef | None = None
    verify: GitRepositoryVerification | None = None
    proxy_secret_ref: LocalObjectReference | None = None
    ignore: str | None = None
    """Extra exclusions in .gitignore syntax, overriding the defaults."""
    suspend: bool | None = None
    recurse_submodules: bool | None = None
    include: list[GitRepositoryInclude] | None = None
    sparse_checkout: list[str] | None = None

    @model_validator(mode="after")
    def _service_account_needs_provider(self) -> Self:
        if self.service_account_name and self.provider not in ("azure", "aws"):
            raise rule_error("serviceAccountName", "can only be set when provider is 'azure' or 'aws'")
        return self


class GitRepositoryStatus(FluxStatus):
    artifact: Artifact | None = None
    included_artifacts: list[Artifact] | None = None
    observed_ignore: str | None = None
    observed_recurse_submodules: bool | None = None
    observed_include: list[GitRepositoryInclude] | None = None
    observed_sparse_checkout: list[str] | None = None
    source_verification_mode: str | None = None


class GitRepository(FluxObject):
    """A Git repository fetched periodically into an artifact."""

    GROUP: ClassVar[str] = SOURCE_GROUP
    VERSION: ClassVar[str] = SOURCE_VERSION
    KIND: ClassVar[str] = "GitRepository"
    PLURAL: ClassVar[str] = "gitrepositories"
    SINGULAR: ClassVar[str] = "gitrepository"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("gitrepo",)
    CATEGORIES: ClassVar[tuple[str, ...]] = CATEGORY_SOURCES
    CRD_ANNOTATIONS: ClassVar[dict[str, str]] = SUBSTITUTE_DISABLED
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = (
        column("URL", ".spec.url"),
        AGE_COLUMN,
        READY_COLUMN,
        STATUS_COLUMN,
    )

    spec: GitRepositorySpec
    status: GitRepositoryStatus = Field(
        default_factory=GitRepositoryStatus, json_schema_extra={"default": {"observedGeneration": -1}}
    )
