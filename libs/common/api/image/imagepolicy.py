"""ImagePolicy (`image.toolkit.fluxcd.io/v1` and `v1beta2`)."""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import ConfigDict, Field, model_validator

from libs.common.api.duration import parse_duration
from libs.common.api.image.imagerepository import IMAGE_GROUP
from libs.common.api.meta import (
    AGE_COLUMN,
    CATEGORY_IMAGES,
    READY_COLUMN,
    STATUS_COLUMN,
    Duration,
    FluxModel,
    FluxObject,
    FluxStatus,
    NamespacedObjectReference,
    PrinterColumn,
    cel_rules,
    column,
    rule_error,
)

DEFAULT_DIGEST_INTERVAL = "10m"


class SemVerPolicy(FluxModel):
    range: str
    """A Masterminds semver constraint; the highest matching tag wins."""


class AlphabeticalPolicy(FluxModel):
    order: Literal["asc", "desc"] = "asc"
    """`asc` selects the last tag in ascending order (Z), `desc` the first (A)."""


class NumericalPolicy(FluxModel):
    order: Literal["asc", "desc"] = "asc"
    """`asc` selects the highest number, `desc` the lowest."""


class ImagePolicyChoice(FluxModel):
    """How the latest tag is chosen: exactly one of semver, alphabetical, numerical."""

    semver: SemVerPolicy | None = None
    alphabetical: AlphabeticalPolicy | None = None
    numerical: NumericalPolicy | None = None


class TagFilter(FluxModel):
    """Only tags matching `pattern` are considered; `extract` (e.g. `$ts`) is what is compared."""

    pattern: str | None = None
    extract: str | None = None


class ImageRef(FluxModel):
    """An image reference: `name:tag[@digest]`."""

    name: str
    tag: str
    digest: str | None = None

    def __str__(self) -> str:
        ref = f"{self.name}:{self.tag}"
        return f"{ref}@{self.digest}" if self.digest else ref


class ImagePolicySpec(FluxModel):
    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                "!has(self.interval) || (has(self.digestReflectionPolicy) && self.digestReflectionPolicy == 'Always')",
                "spec.interval is only accepted when spec.digestReflectionPolicy is set to 'Always'",
            ),
            (
                "has(self.interval) || !has(self.digestReflectionPolicy) || self.digestReflectionPolicy != 'Always'",
                "spec.interval must be set when spec.digestReflectionPolicy is set to 'Always'",
            ),
        )
    )

    image_repository_ref: NamespacedObjectReference
    policy: ImagePolicyChoice
    filter_tags: TagFilter | None = None
    digest_reflection_policy: Literal["Always", "IfNotPresent", "Never"] = "Never"
    """Whether `latestRef.digest` is filled in: Never, IfNotPresent, or Always (re-resolved)."""
    interval: Duration | None = None
    """Digest refresh period; only with `digestReflectionPolicy: Always` (default 10m)."""
    suspend: bool | None = None

    @model_validator(mode="after")
    def _interval_only_with_always(self) -> Self:
        if self.interval is not None and self.digest_reflection_policy != "Always":
            raise rule_error(
                "interval", "is only accepted when spec.digestReflectionPolicy is set to 'Always'"
            )
        return self

    def interval_seconds(self) -> float:
        """The digest refresh period (0 when digests are not re-resolved)."""
        if self.digest_reflection_policy != "Always":
            return 0.0
        return parse_duration(self.interval or DEFAULT_DIGEST_INTERVAL)


class ImagePolicyStatus(FluxStatus):
    """Status of both served versions.

    Sluice stores ImagePolicy as v1 and serves v1beta2 without a conversion webhook, so the stored
    schema keeps v1beta2's `latestImage`/`observedPreviousImage` next to v1's `latestRef`/
    `observedPreviousRef`; otherwise the API server would prune whichever version was not written.
    `record_latest` fills both.
    """

    latest_ref: ImageRef | None = None
    """The selected image: repository name (as written in the ImageRepository), tag and digest."""
    observed_previous_ref: ImageRef | None = None
    """The `latestRef` before the last reconciliation (reset on failure)."""
    latest_image: str | None = None
    """v1beta2: the selected image as `name:tag` (`@digest` when reflected)."""
    observed_previous_image: str | None = None
    """v1beta2: the `latestImage` before the last reconciliation."""

    def record_latest(self, ref: ImageRef) -> None:
        """Record a newly selected image, keeping the previous one as Flux does, in both versions' fields."""
        self.observed_previous_ref = self.latest_ref
        self.observed_previous_image = self.latest_image
        self.latest_ref = ref
        self.latest_image = str(ref)

    def clear_previous(self) -> None:
        """Forget the previous image (Flux resets it when a reconciliation fails)."""
        self.observed_previous_ref = None
        self.observed_previous_image = None


class ImagePolicyV1beta2Status(ImagePolicyStatus):
    """ImagePolicy status as served by v1beta2 (`latestImage`, `observedPreviousImage`)."""


class ImagePolicy(FluxObject):
    """Selects the latest tag of an ImageRepository by a semver, alphabetical or numerical policy."""

    GROUP: ClassVar[str] = IMAGE_GROUP
    VERSION: ClassVar[str] = "v1"
    KIND: ClassVar[str] = "ImagePolicy"
    PLURAL: ClassVar[str] = "imagepolicies"
    SINGULAR: ClassVar[str] = "imagepolicy"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("imgpol", "imagepol")
    CATEGORIES: ClassVar[tuple[str, ...]] = CATEGORY_IMAGES
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = (
        column("Image", ".status.latestRef.name"),
        column("Tag", ".status.latestRef.tag"),
        READY_COLUMN,
        STATUS_COLUMN,
        AGE_COLUMN,
    )

    spec: ImagePolicySpec
    status: ImagePolicyStatus = Field(
        default_factory=ImagePolicyStatus, json_schema_extra={"default": {"observedGeneration": -1}}
    )


class ImagePolicyV1beta2(FluxObject):
    """ImagePolicy as served by `v1beta2` (status `latestImage` / `observedPreviousImage`)."""

    GROUP: ClassVar[str] = IMAGE_GROUP
    VERSION: ClassVar[str] = "v1beta2"
    KIND: ClassVar[str] = "ImagePolicy"
    PLURAL: ClassVar[str] = "imagepolicies"
    SINGULAR: ClassVar[str] = "imagepolicy"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("imgpol", "imagepol")
    CATEGORIES: ClassVar[tuple[str, ...]] = CATEGORY_IMAGES
    STORAGE: ClassVar[bool] = False
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = (
        column("LatestImage", ".status.latestImage"),
        READY_COLUMN,
        STATUS_COLUMN,
        AGE_COLUMN,
    )

    spec: ImagePolicySpec
    status: ImagePolicyV1beta2Status = Field(
        default_factory=ImagePolicyV1beta2Status, json_schema_extra={"default": {"observedGeneration": -1}}
    )
