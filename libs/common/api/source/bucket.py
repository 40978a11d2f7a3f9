"""Bucket (`source.toolkit.fluxcd.io/v1`)."""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import ConfigDict, Field, model_validator

from libs.common.api.meta import (
    AGE_COLUMN,
    CATEGORY_SOURCES,
    READY_COLUMN,
    STATUS_COLUMN,
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
from libs.common.api.source.gitrepository import SOURCE_GROUP, SOURCE_VERSION


class BucketSTSSpec(FluxModel):
    """A Security Token Service from which temporary credentials are obtained."""

    provider: Literal["aws", "ldap"]
    endpoint: str = Field(pattern=r"^(http|https)://.*$")
    secret_ref: LocalObjectReference | None = None
    cert_secret_ref: LocalObjectReference | None = None


class BucketSpec(FluxModel):
    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                "self.provider == 'aws' || self.provider == 'generic' || !has(self.sts)",
                "STS configuration is only supported for the 'aws' and 'generic' Bucket providers",
            ),
            (
                "self.provider != 'aws' || !has(self.sts) || self.sts.provider == 'aws'",
                "'aws' is the only supported STS provider for the 'aws' Bucket provider",
            ),
            (
                "self.provider != 'generic' || !has(self.sts) || self.sts.provider == 'ldap'",
                "'ldap' is the only supported STS provider for the 'generic' Bucket provider",
            ),
            (
                "!has(self.sts) || self.sts.provider != 'aws' || !has(self.sts.secretRef)",
                "spec.sts.secretRef is not required for the 'aws' STS provider",
            ),
            (
                "!has(self.sts) || self.sts.provider != 'aws' || !has(self.sts.certSecretRef)",
                "spec.sts.certSecretRef is not required for the 'aws' STS provider",
            ),
            (
                "self.provider != 'generic' || !has(self.serviceAccountName)",
                "ServiceAccountName is not supported for the 'generic' Bucket provider",
            ),
            (
                "!has(self.secretRef) || !has(self.serviceAccountName)",
                "cannot set both .spec.secretRef and .spec.serviceAccountName",
            ),
        )
    )

    provider: Literal["generic", "aws", "gcp", "azure"] = "generic"
    bucket_name: str
    endpoint: str
    sts: BucketSTSSpec | None = None
    insecure: bool | None = None
    region: str | None = None
    prefix: str | None = None
    """Server-side key prefix filter (generic, aws and gcp providers)."""
    secret_ref: LocalObjectReference | None = None
    cert_secret_ref: LocalObjectReference | None = None
    proxy_secret_ref: LocalObjectReference | None = None
    service_account_name: str | None = None
    interval: Duration
    timeout: Timeout = "60s"
    ignore: str | None = None
    suspend: bool | None = None

    @model_validator(mode="after")
    def _cel_rules(self) -> Self:
        sts = self.sts
        if sts is not None:
            if self.provider not in ("aws", "generic"):
                raise rule_error(
                    "sts", "STS configuration is only supported for the 'aws' and 'generic' Bucket providers"
                )
            if self.provider == "aws" and sts.provider != "aws":
                raise rule_error(
                    "sts.provider", "'aws' is the only supported STS provider for the 'aws' Bucket provider"
                )
            if self.provider == "generic" and sts.provider != "ldap":
                raise rule_error(
                    "sts.provider",
                    "'ldap' is the only supported STS provider for the 'generic' Bucket provider",
                )
            if sts.provider == "aws" and sts.secret_ref is not None:
                raise rule_error("sts.secretRef", "is not required for the 'aws' STS provider")
            if sts.provider == "aws" and sts.cert_secret_ref is not None:
                raise rule_error("sts.certSecretRef", "is not required for the 'aws' STS provider")
        if self.service_account_name and self.provider == "generic":
            raise rule_error("serviceAccountName", "is not supported for the 'generic' Bucket provider")
        if self.service_account_name and self.secret_ref is not None:
            raise rule_error(
                "serviceAccountName", "cannot set both .spec.secretRef and .spec.serviceAccountName"
            )
        return self


class BucketStatus(FluxStatus):
    url: str | None = None
    artifact: Artifact | None = None
    observed_ignore: str | None = None


class Bucket(FluxObject):
    """An S3-compatible (or GCS / Azure Blob) bucket whose objects are fetched into an artifact."""

    GROUP: ClassVar[str] = SOURCE_GROUP
    VERSION: ClassVar[str] = SOURCE_VERSION
    KIND: ClassVar[str] = "Bucket"
    PLURAL: ClassVar[str] = "buckets"
    SINGULAR: ClassVar[str] = "bucket"
    CATEGORIES: ClassVar[tuple[str, ...]] = CATEGORY_SOURCES
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = (
        column("Endpoint", ".spec.endpoint"),
        AGE_COLUMN,
        READY_COLUMN,
        STATUS_COLUMN,
    )

    spec: BucketSpec
    status: BucketStatus = Field(
        default_factory=BucketStatus, json_schema_extra={"default": {"observedGeneration": -1}}
    )
