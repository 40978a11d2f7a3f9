"""Types and constants shared by every Flux kind (fluxcd/pkg `apis/meta`, `apis/acl` and the
parts of Kubernetes' `metav1` that Flux objects embed), plus small status helpers for reconcilers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from libs.common.api.duration import DURATION_PATTERN, TIMEOUT_PATTERN

# --------------------------------------------------------------------------------------------------
# Condition types and reasons (fluxcd/pkg apis/meta)
# --------------------------------------------------------------------------------------------------

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
HEALTHY = "Healthy"
ARTIFACT_IN_STORAGE = "ArtifactInStorage"
ARTIFACT_OUTDATED = "ArtifactOutdated"
FETCH_FAILED = "FetchFailed"
BUILD_FAILED_CONDITION = "BuildFailed"
STORAGE_OPERATION_FAILED = "StorageOperationFailed"
INCLUDE_UNAVAILABLE = "IncludeUnavailable"
SOURCE_VERIFIED = "SourceVerified"
RELEASED = "Released"
TEST_SUCCESS = "TestSuccess"
REMEDIATED = "Remediated"
DRIFTED = "Drifted"

CONDITION_TRUE = "True"
CONDITION_FALSE = "False"
CONDITION_UNKNOWN = "Unknown"

SUCCEEDED = "Succeeded"
FAILED = "Failed"
PROGRESSING = "Progressing"
PROGRESSING_WITH_RETRY = "ProgressingWithRetry"
SUSPENDED = "Suspended"
DEPENDENCY_NOT_READY = "DependencyNotReady"
ARTIFACT_FAILED = "ArtifactFailed"
BUILD_FAILED = "BuildFailed"
HEALTH_CHECK_FAILED = "HealthCheckFailed"
HEALTH_CHECK_CANCELED = "HealthCheckCanceled"
PRUNE_FAILED = "PruneFailed"
RECONCILIATION_SUCCEEDED = "ReconciliationSucceeded"
RECONCILIATION_FAILED = "ReconciliationFailed"
INVALID_CEL_EXPRESSION = "InvalidCELExpression"
FEATURE_GATE_DISABLED = "FeatureGateDisabled"
INVALID_PATH = "InvalidPath"
INVALID_URL = "InvalidURL"
INSECURE_CONNECTIONS_DISALLOWED = "InsecureConnectionsDisallowed"
AUTHENTICATION_FAILED = "AuthenticationFailed"
GIT_OPERATION_FAILED = "GitOperationFailed"
URL_INVALID = "URLInvalid"
EMPTY_GIT_REPOSITORY = "EmptyGitRepository"
VERIFICATION_ERROR = "VerificationError"
NEW_REVISION = "NewRevision"
UPDATE_FAILED = "UpdateFailed"
INVALID_SOURCE_CONFIGURATION = "InvalidSourceConfiguration"
INVALID_POLICY_SELECTOR = "InvalidPolicySelector"
REMOVED_TEMPLATE_FIELD = "RemovedTemplateField"

# HelmRelease reasons (helm-controller api/v2).
INSTALL_SUCCEEDED = "InstallSucceeded"
INSTALL_FAILED = "InstallFailed"
UPGRADE_SUCCEEDED = "UpgradeSucceeded"
UPGRADE_FAILED = "UpgradeFailed"
TEST_SUCCEEDED = "TestSucceeded"
TEST_FAILED = "TestFailed"
ROLLBACK_SUCCEEDED = "RollbackSucceeded"
ROLLBACK_FAILED = "RollbackFailed"
UNINSTALL_SUCCEEDED = "UninstallSucceeded"
UNINSTALL_FAILED = "UninstallFailed"
DRIFT_DETECTED = "DriftDetected"
NO_DRIFT_DETECTED = "NoDriftDetected"

# Event reasons that are not condition reasons.
NEW_ARTIFACT = "NewArtifact"
ARTIFACT_UP_TO_DATE = "ArtifactUpToDate"

# --------------------------------------------------------------------------------------------------
# Annotations, labels, finalizers
# --------------------------------------------------------------------------------------------------

RECONCILE_REQUEST_ANNOTATION = "reconcile.fluxcd.io/requestedAt"
FORCE_REQUEST_ANNOTATION = "reconcile.fluxcd.io/forceAt"
RESET_REQUEST_ANNOTATION = "reconcile.fluxcd.io/resetAt"
WATCH_LABEL = "reconcile.fluxcd.io/watch"
WATCH_LABEL_ENABLED = "Enabled"
FINALIZER = "finalizers.fluxcd.io"
SHARDING_LABEL = "sharding.fluxcd.io/key"
KUSTOMIZE_NAME_LABEL = "kustomize.toolkit.fluxcd.io/name"
KUSTOMIZE_NAMESPACE_LABEL = "kustomize.toolkit.fluxcd.io/namespace"
HELM_NAME_LABEL = "helm.toolkit.fluxcd.io/name"
HELM_NAMESPACE_LABEL = "helm.toolkit.fluxcd.io/namespace"
EVENT_ANNOTATION_PREFIX = "event.toolkit.fluxcd.io/"
EVENT_CHANGE_REQUEST_ANNOTATION = "event.toolkit.fluxcd.io/change_request"

# Per-object annotations/labels honoured by the kustomize controller (values are case-sensitive as in Flux).
KUSTOMIZE_SSA_ANNOTATION = "kustomize.toolkit.fluxcd.io/ssa"
KUSTOMIZE_FORCE_ANNOTATION = "kustomize.toolkit.fluxcd.io/force"
KUSTOMIZE_PRUNE_ANNOTATION = "kustomize.toolkit.fluxcd.io/prune"
KUSTOMIZE_RECONCILE_ANNOTATION = "kustomize.toolkit.fluxcd.io/reconcile"
KUSTOMIZE_SUBSTITUTE_ANNOTATION = "kustomize.toolkit.fluxcd.io/substitute"
KUSTOMIZE_DECRYPT_ANNOTATION = "kustomize.toolkit.fluxcd.io/decrypt"
HELM_DRIFT_DETECTION_ANNOTATION = "helm.toolkit.fluxcd.io/driftDetection"

# Event metadata keys, prefixed with the reporting object's API group (e.g. `source.toolkit.fluxcd.io/revision`).
META_REVISION = "revision"
META_ORIGIN_REVISION = "originRevision"
META_DIGEST = "digest"
META_TOKEN = "token"
META_COMMIT_STATUS = "commit_status"
META_COMMIT_STATUS_UPDATE = "update"

# --------------------------------------------------------------------------------------------------
# Field types
# --------------------------------------------------------------------------------------------------

Time = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
"""An RFC 3339 timestamp as Kubernetes writes it (`2024-05-01T10:00:00Z`)."""

Duration = Annotated[str, Field(pattern=DURATION_PATTERN)]
"""A Go duration with Flux's interval pattern (`10m`, `1h30m`)."""

Timeout = Annotated[str, Field(pattern=TIMEOUT_PATTERN)]
"""A Go duration without hours, as Flux's source timeouts."""

Int64 = Annotated[int, Field(json_schema_extra={"format": "int64"})]

JSONObject = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]
"""Free-form JSON (`apiextensionsv1.JSON`) kept as-is by the API server."""

IntOrString = Annotated[int | str, WithJsonSchema({"x-kubernetes-int-or-string": True})]


def cel_rules(*rules: tuple[str, str]) -> dict[str, Any]:
    """``json_schema_extra`` carrying CEL validation rules (``x-kubernetes-validations``) for the CRD."""
    return {"x-kubernetes-validations": [{"message": message, "rule": rule} for rule, message in rules]}


#: CRD annotation Flux sets on kinds whose specs may contain `${...}` text of their own.
SUBSTITUTE_DISABLED: dict[str, str] = {"kustomize.toolkit.fluxcd.io/substitute": "disabled"}


def now_rfc3339() -> str:
    """The current time, formatted like `metav1.Time` (seconds precision, UTC, `Z`)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FluxModel(BaseModel):
    """Base of every API struct: camelCase JSON names, snake_case attributes, unknown fields kept."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="allow",
        use_attribute_docstrings=True,
    )


# --------------------------------------------------------------------------------------------------
# Object references (fluxcd/pkg apis/meta)
# --------------------------------------------------------------------------------------------------


class LocalObjectReference(FluxModel):
    """A reference to an object in the same namespace."""

    name: str = Field(min_length=1, max_length=253)


class NamespacedObjectReference(FluxModel):
    """A reference to an object in the given namespace (default: the referrer's)."""

    name: str = Field(min_length=1, max_length=253)
    namespace: str | None = Field(default=None, min_length=1, max_length=63)


class NamespacedObjectKindReference(FluxModel):
    """A reference to an object of the given kind in the given namespace."""

    api_version: str | None = None
    kind: str
    name: str
    namespace: str | None = None


class SecretKeyReference(FluxModel):
    """A key inside a Secret in the same namespace."""

    name: str
    key: str | None = None


class DependencyReference(FluxModel):
    """A dependency on another object of the same kind."""

    name: str
    namespace: str | None = None
    ready_expr: str | None = None
    """CEL expression over `dep` and `self` replacing the built-in readiness check."""


class KubeConfigReference(FluxModel):
    """Where to find a kubeconfig for a remote cluster: a Secret key or a ConfigMap (cloud provider)."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                "has(self.configMapRef) || has(self.secretRef)",
                "exactly one of secretRef or configMapRef must be set",
            ),
            (
                "!has(self.configMapRef) || !has(self.secretRef)",
                "exactly one of secretRef or configMapRef must be set",
            ),
        )
    )

    secret_ref: SecretKeyReference | None = None
    config_map_ref: LocalObjectReference | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.secret_ref is None) == (self.config_map_ref is None):
            raise rule_error("secretRef", "exactly one of secretRef or configMapRef must be set")
        return self


class LabelSelectorRequirement(FluxModel):
    key: str
    operator: str
    values: list[str] | None = None


class LabelSelector(FluxModel):
    """A Kubernetes label selector (`metav1.LabelSelector`)."""

    match_labels: dict[str, str] | None = None
    match_expressions: list[LabelSelectorRequirement] | None = None


class NamespaceSelector(FluxModel):
    match_labels: dict[str, str] | None = None


class AccessFrom(FluxModel):
    """ACL for cross-namespace references (fluxcd/pkg apis/acl)."""

    namespace_selectors: list[NamespaceSelector]


# --------------------------------------------------------------------------------------------------
# Status building blocks
# --------------------------------------------------------------------------------------------------


class Condition(FluxModel):
    """A `metav1.Condition`."""

    type: str = Field(
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
    )
    status: Literal["True", "False", "Unknown"]
    observed_generation: Int64 | None = Field(default=None, ge=0)
    last_transition_time: Time
    reason: str = Field(min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    message: str = Field(max_length=32768)


class Artifact(FluxModel):
    """The output of a source reconciliation, stored by source and served over HTTP."""

    path: str
    """Relative storage path: `<kind>/<namespace>/<name>/<file>`."""
    url: str
    revision: str
    """Human-readable source revision, e.g. `main@sha1:<hex>`."""
    digest: str | None = Field(default=None, pattern=r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
    last_update_time: Time
    size: Int64 | None = None
    metadata: dict[str, str] | None = None


class ResourceRef(FluxModel):
    """An inventory entry: `<namespace>_<name>_<group>_<kind>` and the object's version."""

    id: str
    v: str


class ResourceInventory(FluxModel):
    entries: list[ResourceRef]


class ReconcileRequestStatus(FluxModel):
    """Echo of the last handled `reconcile.fluxcd.io/requestedAt` value."""

    last_handled_reconcile_at: str | None = None


class FluxStatus(ReconcileRequestStatus):
    """Fields every reconciled kind's status has."""

    observed_generation: Int64 = -1
    conditions: list[Condition] | None = None


# --------------------------------------------------------------------------------------------------
# Object metadata
# --------------------------------------------------------------------------------------------------


class OwnerReference(FluxModel):
    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ObjectMeta(FluxModel):
    """The `metav1.ObjectMeta` fields Sluice reads; the others are kept as they come."""

    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    finalizers: list[str] | None = None
    deletion_timestamp: str | None = None
    creation_timestamp: str | None = None
    owner_references: list[OwnerReference] | None = None


class PrinterColumn(BaseModel):
    """One `additionalPrinterColumns` entry of a CRD version."""

    model_config = ConfigDict(frozen=True)

    name: str
    type: str
    json_path: str
    priority: int = 0
    description: str = ""

    def to_crd(self) -> dict[str, Any]:
        column: dict[str, Any] = {"jsonPath": self.json_path, "name": self.name, "type": self.type}
        if self.description:
            column["description"] = self.description
        if self.priority:
            column["priority"] = self.priority
        return column


def column(name: str, json_path: str, type: str = "string", priority: int = 0) -> PrinterColumn:
    return PrinterColumn(name=name, type=type, json_path=json_path, priority=priority)


READY_COLUMN = column("Ready", '.status.conditions[?(@.type=="Ready")].status')
STATUS_COLUMN = column("Status", '.status.conditions[?(@.type=="Ready")].message')
AGE_COLUMN = column("Age", ".metadata.creationTimestamp", type="date")

CATEGORY_SOURCES = ("all", "fluxcd", "fluxcd-sources")
CATEGORY_APPLIERS = ("all", "fluxcd", "fluxcd-appliers")
CATEGORY_NOTIFICATIONS = ("all", "fluxcd", "fluxcd-notifications")
CATEGORY_IMAGES = ("all", "fluxcd", "fluxcd-images")


class FluxObject(FluxModel):
    """A whole Flux custom resource: `apiVersion`, `kind`, `metadata`, `spec` and `status`."""

    GROUP: ClassVar[str] = ""
    VERSION: ClassVar[str] = ""
    KIND: ClassVar[str] = ""
    PLURAL: ClassVar[str] = ""
    SINGULAR: ClassVar[str] = ""
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ()
    CATEGORIES: ClassVar[tuple[str, ...]] = ("all", "fluxcd")
    NAMESPACED: ClassVar[bool] = True
    STATUS_SUBRESOURCE: ClassVar[bool] = True
    STORAGE: ClassVar[bool] = True
    """Whether this class is the storage version of its kind."""
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = ()
    CRD_ANNOTATIONS: ClassVar[dict[str, str]] = {}

    api_version_: str = Field(default="", alias="apiVersion")
    """`apiVersion` as written; always equal to `api_version()` once validated."""
    kind: str = ""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    @classmethod
    def api_version(cls) -> str:
        """`<group>/<version>` of this class."""
        return f"{cls.GROUP}/{cls.VERSION}"

    @model_validator(mode="before")
    @classmethod
    def _type_meta(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not cls.KIND:
            return data
        data = dict(data)
        expected = cls.api_version()
        api_key = "api_version_" if "api_version_" in data else "apiVersion"
        given_api = data.get(api_key) or expected
        given_kind = data.get("kind") or cls.KIND
        if given_kind != cls.KIND:
            raise rule_error("kind", f"must be {cls.KIND!r}, got {given_kind!r}")
        if given_api != expected:
            raise rule_error("apiVersion", f"must be {expected!r}, got {given_api!r}")
        data[api_key] = expected
        data["kind"] = cls.KIND
        return data

    def to_k8s(self) -> dict[str, Any]:
        """The object as Kubernetes JSON (camelCase, no nulls)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")

    @property
    def name(self) -> str:
        return self.metadata.name or ""

    @property
    def namespace(self) -> str:
        return self.metadata.namespace or ""

    @property
    def namespaced_name(self) -> str:
        """`<namespace>/<name>`."""
        return f"{self.namespace}/{self.name}"

    @property
    def generation(self) -> int:
        return self.metadata.generation or 0

    def get_conditions(self) -> list[Condition]:
        status = getattr(self, "status", None)
        conditions: list[Condition] | None = getattr(status, "conditions", None)
        return list(conditions) if conditions else []

    @property
    def suspended(self) -> bool:
        spec = getattr(self, "spec", None)
        return bool(getattr(spec, "suspend", False))


# --------------------------------------------------------------------------------------------------
# Validation errors that name the field (the CEL rules of Flux's CRDs)
# --------------------------------------------------------------------------------------------------


def rule_error(field: str, message: str) -> Exception:
    """An error for a cross-field rule, carrying the offending field's JSON path (relative)."""
    return PydanticCustomError("flux_rule", "{field}: {problem}", {"field": field, "problem": message})


# --------------------------------------------------------------------------------------------------
# Condition helpers
# --------------------------------------------------------------------------------------------------


def get_condition(conditions: list[Condition] | None, type: str) -> Condition | None:
    """The condition of the given type, or None."""
    for condition in conditions or []:
        if condition.type == type:
            return condition
    return None


def set_condition(
    conditions: list[Condition] | None,
    type: str,
    status: str,
    reason: str,
    message: str,
    observed_generation: int | None = None,
    *,
    now: str | None = None,
) -> list[Condition]:
    """A new list with the condition set; `lastTransitionTime` changes only when the status does."""
    existing = get_condition(conditions, type)
    if existing is not None and existing.status == status:
        transition = existing.last_transition_time
    else:
        transition = now or now_rfc3339()
    updated = Condition(
        type=type,
        status=status,  # type: ignore[arg-type]
        reason=reason,
        message=message,
        observed_generation=observed_generation,
        last_transition_time=transition,
    )
    result: list[Condition] = []
    replaced = False
    for condition in conditions or []:
        if condition.type == type:
            result.append(updated)
            replaced = True
        else:
            result.append(condition)
    if not replaced:
        result.append(updated)
    return result


def remove_condition(conditions: list[Condition] | None, type: str) -> list[Condition]:
    """A new list without conditions of the given type."""
    return [c for c in conditions or [] if c.type != type]


def is_ready(obj: FluxObject) -> bool:
    """Ready=True for the current generation (kinds without a status, like Provider, are always ready)."""
    if not obj.STATUS_SUBRESOURCE:
        return True
    condition = get_condition(obj.get_conditions(), READY)
    if condition is None or condition.status != CONDITION_TRUE:
        return False
    status = getattr(obj, "status", None)
    observed: int = getattr(status, "observed_generation", -1)
    return obj.metadata.generation is None or observed == obj.metadata.generation
