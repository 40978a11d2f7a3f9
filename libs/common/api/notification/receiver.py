"""Receiver (`notification.toolkit.fluxcd.io/v1`): webhooks that trigger reconciliations."""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import ConfigDict, Field, model_validator

from libs.common.api.meta import (
    AGE_COLUMN,
    CATEGORY_NOTIFICATIONS,
    READY_COLUMN,
    STATUS_COLUMN,
    Duration,
    FluxModel,
    FluxObject,
    FluxStatus,
    LocalObjectReference,
    PrinterColumn,
    cel_rules,
    rule_error,
)
from libs.common.api.notification.alert import EventSourceKind
from libs.common.api.notification.provider import NOTIFICATION_GROUP

ReceiverType = Literal[
    "generic",
    "generic-hmac",
    "generic-oidc",
    "github",
    "gitlab",
    "bitbucket",
    "harbor",
    "dockerhub",
    "quay",
    "gcr",
    "nexus",
    "acr",
    "cdevents",
]


class ReceiverResource(FluxModel):
    """An object (or, with `name: '*'`, objects matching labels) to annotate on a valid webhook."""

    api_version: str | None = None
    kind: EventSourceKind
    name: str = Field(min_length=1, max_length=253)
    namespace: str | None = Field(default=None, min_length=1, max_length=253)
    match_labels: dict[str, str] | None = None
    filter: str | None = None
    """CEL expression deciding per resource whether it is annotated."""


class OIDCVariable(FluxModel):
    name: str
    expression: str


class OIDCValidation(FluxModel):
    expression: str
    """CEL expression that must be true for the token to be accepted."""
    message: str | None = None


class OIDCProvider(FluxModel):
    """An OIDC issuer whose ID tokens are accepted by a `generic-oidc` receiver."""

    issuer_url: str = Field(alias="issuerURL")
    audience: str = "notification-controller"
    variables: list[OIDCVariable] | None = None
    validations: list[OIDCValidation] | None = None


class ReceiverSpec(FluxModel):
    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                "self.type == 'generic-oidc' || has(self.secretRef)",
                "spec.secretRef is required unless the receiver type is 'generic-oidc'",
            ),
            (
                "self.type != 'generic-oidc' || (!has(self.secretRef) && has(self.oidcProviders))",
                "the 'generic-oidc' receiver type needs spec.oidcProviders and no spec.secretRef",
            ),
            (
                "self.type == 'generic-oidc' || !has(self.oidcProviders)",
                "spec.oidcProviders is only supported for the 'generic-oidc' receiver type",
            ),
        )
    )

    type: ReceiverType
    interval: Duration = "10m"
    """How often the token Secret is re-read."""
    events: list[str] | None = None
    """Event types to accept (e.g. GitHub's `push`); empty = all."""
    resources: list[ReceiverResource]
    resource_filter: str | None = None
    """CEL expression over `req` (body), `res` (object) and `claims` (generic-oidc)."""
    secret_ref: LocalObjectReference | None = None
    oidc_providers: list[OIDCProvider] | None = None
    suspend: bool | None = None

    @model_validator(mode="after")
    def _type_specific_fields(self) -> Self:
        if self.type == "generic-oidc":
            if self.secret_ref is not None:
                raise rule_error("secretRef", "must not be set for the 'generic-oidc' receiver type")
            if not self.oidc_providers:
                raise rule_error("oidcProviders", "is required for the 'generic-oidc' receiver type")
        else:
            if self.secret_ref is None:
                raise rule_error("secretRef", f"is required for the '{self.type}' receiver type")
            if self.oidc_providers:
                raise rule_error("oidcProviders", "is only supported for the 'generic-oidc' receiver type")
        return self


class ReceiverStatus(FluxStatus):
    webhook_path: str | None = None
    """`/hook/<sha256(token+name+namespace)>`."""


class Receiver(FluxObject):
    """An HTTP endpoint that annotates resources with `reconcile.fluxcd.io/requestedAt`."""

    GROUP: ClassVar[str] = NOTIFICATION_GROUP
    VERSION: ClassVar[str] = "v1"
    KIND: ClassVar[str] = "Receiver"
    PLURAL: ClassVar[str] = "receivers"
    SINGULAR: ClassVar[str] = "receiver"
    CATEGORIES: ClassVar[tuple[str, ...]] = CATEGORY_NOTIFICATIONS
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = (AGE_COLUMN, READY_COLUMN, STATUS_COLUMN)

    spec: ReceiverSpec
    status: ReceiverStatus = Field(
        default_factory=ReceiverStatus, json_schema_extra={"default": {"observedGeneration": -1}}
    )
