"""Provider (`notification.toolkit.fluxcd.io/v1beta3`): where alerts are sent. Has no status."""

from __future__ import annotations

from typing import ClassVar, Literal, Self, get_args

from pydantic import ConfigDict, Field, model_validator

from libs.common.api.meta import (
    AGE_COLUMN,
    CATEGORY_NOTIFICATIONS,
    Duration,
    FluxModel,
    FluxObject,
    LocalObjectReference,
    PrinterColumn,
    Timeout,
    cel_rules,
    rule_error,
)

NOTIFICATION_GROUP = "notification.toolkit.fluxcd.io"

#: Provider types that set Git commit statuses (and so may use `commitStatusExpr`).
COMMIT_STATUS_TYPES: tuple[str, ...] = (
    "github",
    "gitlab",
    "gitea",
    "bitbucketserver",
    "bitbucket",
    "azuredevops",
)

ProviderType = Literal[
    "slack",
    "discord",
    "msteams",
    "rocket",
    "generic",
    "generic-hmac",
    "github",
    "gitlab",
    "gitea",
    "bitbucketserver",
    "bitbucket",
    "azuredevops",
    "googlechat",
    "googlepubsub",
    "webex",
    "sentry",
    "azureeventhub",
    "telegram",
    "lark",
    "matrix",
    "opsgenie",
    "alertmanager",
    "grafana",
    "githubdispatch",
    "pagerduty",
    "datadog",
    "nats",
    "zulip",
    "otel",
    "githubpullrequestcomment",
    "gitlabmergerequestcomment",
    "giteapullrequestcomment",
    "incident.io",
    "zoom",
]

#: Every accepted `spec.type`.
PROVIDER_TYPES: tuple[str, ...] = get_args(ProviderType)


class ProviderSpec(FluxModel):
    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                "!has(self.commitStatusExpr) || self.type in ['github', 'gitlab', 'gitea', 'bitbucketserver', 'bitbucket', 'azuredevops']",
                "spec.commitStatusExpr is only supported for the git commit status provider types",
            )
        )
    )

    type: ProviderType
    interval: Duration | None = None
    """Deprecated and unused."""
    channel: str | None = Field(default=None, max_length=2048)
    username: str | None = Field(default=None, max_length=2048)
    address: str | None = Field(default=None, max_length=2048)
    """Webhook URL, repository URL, project id … depending on `type`; the Secret's `address` wins."""
    timeout: Timeout | None = None
    proxy: str | None = Field(default=None, max_length=2048, pattern=r"^(http|https)://.*$")
    """Deprecated: use `proxySecretRef`."""
    secret_ref: LocalObjectReference | None = None
    cert_secret_ref: LocalObjectReference | None = None
    proxy_secret_ref: LocalObjectReference | None = None
    service_account_name: str | None = None
    commit_status_expr: str | None = None
    """CEL expression over `event`, `provider` and `alert` giving the commit status key."""
    suspend: bool | None = None

    @model_validator(mode="after")
    def _commit_status_expr_only_for_git(self) -> Self:
        if self.commit_status_expr and self.type not in COMMIT_STATUS_TYPES:
            raise rule_error(
                "commitStatusExpr",
                "is only supported for the "
                + ", ".join(f"'{t}'" for t in COMMIT_STATUS_TYPES)
                + " provider types",
            )
        return self


class Provider(FluxObject):
    """A notification endpoint: chat, incident tool, webhook or Git commit status."""

    GROUP: ClassVar[str] = NOTIFICATION_GROUP
    VERSION: ClassVar[str] = "v1beta3"
    KIND: ClassVar[str] = "Provider"
    PLURAL: ClassVar[str] = "providers"
    SINGULAR: ClassVar[str] = "provider"
    CATEGORIES: ClassVar[tuple[str, ...]] = CATEGORY_NOTIFICATIONS
    STATUS_SUBRESOURCE: ClassVar[bool] = False
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = (AGE_COLUMN,)

    spec: ProviderSpec
