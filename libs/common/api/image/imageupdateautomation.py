"""ImageUpdateAutomation (`image.toolkit.fluxcd.io/v1`, also served as `v1beta2`)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from libs.common.api.image.imagepolicy import ImageRef
from libs.common.api.image.imagerepository import IMAGE_GROUP
from libs.common.api.meta import (
    AGE_COLUMN,
    CATEGORY_IMAGES,
    READY_COLUMN,
    STATUS_COLUMN,
    SUBSTITUTE_DISABLED,
    Duration,
    FluxModel,
    FluxObject,
    FluxStatus,
    LabelSelector,
    LocalObjectReference,
    PrinterColumn,
    Time,
    column,
)
from libs.common.api.source.gitrepository import GitRepositoryRef

DEFAULT_MESSAGE_TEMPLATE = "Update from image update automation"


class CrossNamespaceSourceReference(FluxModel):
    """The GitRepository giving URL, credentials and default ref."""

    api_version: str | None = None
    kind: Literal["GitRepository"] = "GitRepository"
    name: str
    namespace: str | None = None


class GitCheckoutSpec(FluxModel):
    ref: GitRepositoryRef
    """Overrides the GitRepository's ref for the clone the automation commits on."""


class CommitUser(FluxModel):
    name: str | None = None
    email: str


class SigningKey(FluxModel):
    """A Secret with a GPG (`git.asc` + `passphrase`) or SSH (`identity` + `password`) key."""

    secret_ref: LocalObjectReference
    type: Literal["gpg", "ssh"] | None = None


class CommitSpec(FluxModel):
    author: CommitUser
    signing_key: SigningKey | None = None
    message_template: str | None = None
    """Go text/template for the commit message (data: `.AutomationObject`, `.Changed`, `.Values`)."""
    message_template_values: dict[str, str] | None = None


class PushSpec(FluxModel):
    branch: str | None = None
    """Branch to push to, created from the checkout branch; defaults to the checkout branch."""
    refspec: str | None = Field(default=None, pattern=r"^$|^[^+:]")
    """Additional refspec pushed (e.g. Gerrit `refs/for/main`)."""
    options: dict[str, str] | None = None
    """Git push options."""


class GitSpec(FluxModel):
    checkout: GitCheckoutSpec | None = None
    commit: CommitSpec
    push: PushSpec | None = None


class UpdateStrategy(FluxModel):
    strategy: Literal["Setters"] = "Setters"
    path: str | None = None
    """Directory scanned for `$imagepolicy` markers; defaults to the repository root."""


class ImageUpdateAutomationSpec(FluxModel):
    source_ref: CrossNamespaceSourceReference
    git: GitSpec | None = None
    interval: Duration
    policy_selector: LabelSelector | None = None
    """Which ImagePolicies of the automation's namespace are used; default all."""
    update: UpdateStrategy = Field(
        default_factory=UpdateStrategy, json_schema_extra={"default": {"strategy": "Setters"}}
    )
    suspend: bool | None = None

    def message_template(self) -> str:
        if self.git is not None and self.git.commit.message_template:
            return self.git.commit.message_template
        return DEFAULT_MESSAGE_TEMPLATE


class ImageUpdateAutomationStatus(FluxStatus):
    last_automation_run_time: Time | None = None
    last_push_commit: str | None = None
    """SHA1 of the last commit pushed by this automation."""
    last_push_time: Time | None = None
    observed_policies: dict[str, ImageRef] | None = None
    """Policy name -> the image reference it selected at the last run."""
    observed_source_revision: str | None = None


class ImageUpdateAutomation(FluxObject):
    """Rewrites `$imagepolicy`-marked fields in a Git repository and pushes a commit."""

    GROUP: ClassVar[str] = IMAGE_GROUP
    VERSION: ClassVar[str] = "v1"
    KIND: ClassVar[str] = "ImageUpdateAutomation"
    PLURAL: ClassVar[str] = "imageupdateautomations"
    SINGULAR: ClassVar[str] = "imageupdateautomation"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("iua", "imgupd", "imgauto")
    CATEGORIES: ClassVar[tuple[str, ...]] = CATEGORY_IMAGES
    CRD_ANNOTATIONS: ClassVar[dict[str, str]] = SUBSTITUTE_DISABLED
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = (
        READY_COLUMN,
        STATUS_COLUMN,
        column("Last run", ".status.lastAutomationRunTime", priority=1),
        AGE_COLUMN,
    )

    spec: ImageUpdateAutomationSpec
    status: ImageUpdateAutomationStatus = Field(
        default_factory=ImageUpdateAutomationStatus, json_schema_extra={"default": {"observedGeneration": -1}}
    )


class ImageUpdateAutomationV1beta2(ImageUpdateAutomation):
    """ImageUpdateAutomation as served by `image.toolkit.fluxcd.io/v1beta2` (same schema as v1)."""

    VERSION: ClassVar[str] = "v1beta2"
    STORAGE: ClassVar[bool] = False
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = (
        column("Last run", ".status.lastAutomationRunTime"),
        READY_COLUMN,
        STATUS_COLUMN,
        AGE_COLUMN,
    )
