"""Authentication (bearer tokens) and RBAC authorization, like the real API server's, opt-in.

Off by default: the emulator then trusts every request, as it always has. With `rbac=True` the
admin token the kubeconfigs carry is `system:admin` in `system:masters`, ServiceAccount tokens come
from the TokenRequest subresource, and every request is judged by the RBAC rules stored in the
cluster itself (Roles, ClusterRoles and their bindings), so tests can prove a component works with
only the permissions its manifests grant — and is refused the rest.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from . import errors as E
from .store import Store

JSON = dict[str, Any]

ADMIN_TOKEN = "sluice-emulator"
RBAC_GROUP = "rbac.authorization.k8s.io"
MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"

# The bootstrap policy a real cluster starts with, reduced to what matters here: the admin role
# (deploy/k8s binds the apply service to it), discovery and self-reviews for everyone signed in.
BOOTSTRAP: list[JSON] = [
    {
        "kind": "ClusterRole",
        "metadata": {"name": "cluster-admin"},
        "rules": [
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            {"nonResourceURLs": ["*"], "verbs": ["*"]},
        ],
    },
    {
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "cluster-admin"},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": MASTERS}],
    },
    {
        "kind": "ClusterRole",
        "metadata": {"name": "system:discovery"},
        "rules": [
            {
                "nonResourceURLs": [
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
                "verbs": ["get"],
            }
        ],
    },
    {
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "system:discovery"},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "system:discovery"},
        "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": AUTHENTICATED}],
    },
    {
        "kind": "ClusterRole",
        "metadata": {"name": "system:basic-user"},
        "rules": [
            {
                "apiGroups": ["authorization.k8s.io"],
                "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                "verbs": ["create"],
            },
            {
                "apiGroups": ["authentication.k8s.io"],
                "resources": ["selfsubjectreviews"],
                "verbs": ["create"],
            },
        ],
    },
    {
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "system:basic-user"},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "system:basic-user"},
        "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": AUTHENTICATED}],
    },
]


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]

    def info(self) -> JSON:
        return {"username": self.name, "groups": list(self.groups)}


ADMIN = User("system:admin", (MASTERS, AUTHENTICATED))


def service_account_user(namespace: str, name: str) -> User:
    return User(
        f"system:serviceaccount:{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED),
    )


@dataclass(frozen=True)
class Attributes:
    """What a request asks to do, as the real server's RequestInfo describes it."""

    verb: str
    resource_request: bool
    path: str = ""
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    def describe(self, user: str) -> str:
        """The real authorizer's denial text (without the `... is forbidden:` prefix)."""
        if not self.resource_request:
            return f'User "{user}" cannot {self.verb} path "{self.path}"'
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        where = f'in the namespace "{self.namespace}"' if self.namespace else "at the cluster scope"
        return f'User "{user}" cannot {self.verb} resource "{resource}" in API group "{self.group}" {where}'

    def forbidden(self, user: str) -> E.ApiError:
        why = self.describe(user)
        if not self.resource_request:
            return E.ApiError(403, "Forbidden", f"forbidden: {why}")
        qualified = f"{self.resource}.{self.group}" if self.group else self.resource
        subject = f'{qualified} "{self.name}"' if self.name else qualified
        return E.ApiError(
            403,
            "Forbidden",
            f"{subject} is forbidden: {why}",
            name=self.name or None,
            group=self.group,
            kind=self.resource,
        )


@dataclass(frozen=True)
class Denial:
    """One refused request, kept for tests (`emu.denials`)."""

    user: str
    attributes: Attributes
    message: str


_NAMESPACE_SUBRESOURCES = ("status", "finalize")


def request_attributes(method: str, path: str, query: dict[str, str]) -> Attributes:
    """Parse a request like k8s.io/apiserver's RequestInfoFactory: resource or non-resource."""
    parts = [p for p in path.split("/") if p]
    http_verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
    if not parts or parts[0] not in ("api", "apis") or len(parts) < (3 if parts[0] == "api" else 4):
        return Attributes(verb=http_verb.get(method, method.lower()), resource_request=False, path=path)
    group = "" if parts[0] == "api" else parts[1]
    rest = parts[2:] if parts[0] == "api" else parts[3:]
    watch_prefix = rest[0] == "watch"
    if watch_prefix:
        rest = rest[1:]
    namespace = ""
    if rest and rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if method == "GET":
        watching = watch_prefix or query.get("watch", "").lower() in ("true", "1")
        verb = "watch" if watching else ("get" if name else "list")
        if not name:
            name = _name_from_field_selector(query.get("fieldSelector", ""))
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = http_verb.get(method, method.lower())
    return Attributes(
        verb=verb,
        resource_request=True,
        path=path,
        group=group,
        resource=resource,
        subresource=subresource,
        namespace=namespace,
        name=name,
    )


def _name_from_field_selector(selector: str) -> str:
    """A list/watch of one object (`metadata.name=x`) counts as that name, as on the real server."""
    for term in selector.split(","):
        key, _, value = term.partition("=")
        if key.strip() == "metadata.name" and value and not value.startswith("="):
            return value.strip()
    return ""


# -- rule matching (k8s.io/kubernetes/pkg/apis/rbac/v1 helpers) ----------------------------------
def _verb_matches(rule: JSON, verb: str) -> bool:
    verbs = rule.get("verbs") or []
    return "*" in verbs or verb in verbs


def _group_matches(rule: JSON, group: str) -> bool:
    groups = rule.get("apiGroups") or []
    return "*" in groups or group in groups


def _resource_matches(rule: JSON, resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    for wanted in rule.get("resources") or []:
        if wanted in ("*", combined):
            return True
        if subresource and wanted == f"*/{subresource}":
            return True
    return False


def _name_matches(rule: JSON, name: str) -> bool:
    names = rule.get("resourceNames") or []
    return not names or name in names


def _url_matches(rule: JSON, path: str) -> bool:
    for url in rule.get("nonResourceURLs") or []:
        if url in ("*", path) or (url.endswith("*") and path.startswith(url[:-1])):
            return True
    return False


def rule_allows(rule: JSON, attrs: Attributes) -> bool:
    if not _verb_matches(rule, attrs.verb):
        return False
    if not attrs.resource_request:
        return _url_matches(rule, attrs.path)
    return (
        _group_matches(rule, attrs.group)
        and _resource_matches(rule, attrs.resource, attrs.subresource)
        and _name_matches(rule, attrs.name)
    )


@dataclass
class Rbac:
    """Authenticates bearer tokens and authorizes requests from the RBAC objects in `store`.

    Rules are read from the store on every request, so creating or deleting a binding takes
    effect at once, as it does (within moments) on a real cluster.
    """

    store: Store
    tokens: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # token → (ns, name, uid)
    denials: list[Denial] = field(default_factory=list)
    # (user, verb, group, resource[/subresource]) of every allowed resource request by a user other
    # than the admin: which permissions of a role are ever used
    grants: set[tuple[str, str, str, str]] = field(default_factory=set)

    # -- authentication ------------------------------------------------------------------------
    def authenticate(self, authorization: str) -> User | None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        return self.user_of(token.strip())

    def user_of(self, token: str) -> User | None:
        if secrets.compare_digest(token, ADMIN_TOKEN):
            return ADMIN
        owner = self.tokens.get(token)
        if owner is None:
            return None
        namespace, name, uid = owner
        account = self.store.get(("", "serviceaccounts"), namespace, name)
        if account is None or account["metadata"].get("uid") != uid:
            return None  # the ServiceAccount is gone (or was recreated): its tokens died with it
        return service_account_user(namespace, name)

    def issue(self, account: JSON, body: Any) -> JSON:
        """Answer a TokenRequest for `account`: a random token bound to its uid."""
        spec = (body.get("spec") or {}) if isinstance(body, dict) else {}
        seconds = int(spec.get("expirationSeconds") or 3600)
        token = "sa." + secrets.token_urlsafe(32)
        meta = account["metadata"]
        self.tokens[token] = (meta["namespace"], meta["name"], meta["uid"])
        expires = (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            "spec": {"audiences": spec.get("audiences") or [], "expirationSeconds": seconds},
            "status": {"token": token, "expirationTimestamp": expires},
        }

    # -- authorization -------------------------------------------------------------------------
    def allows(self, user: User, attrs: Attributes) -> tuple[bool, str]:
        """(allowed, reason) — the reason names the binding and role, like the real authorizer."""
        if MASTERS in user.groups:
            return True, f'allowed by group "{MASTERS}"'
        for binding, rules in self._bound_rules(user, attrs.namespace):
            if any(rule_allows(rule, attrs) for rule in rules):
                return True, f"RBAC: allowed by {binding}"
        return False, ""

    def check(self, user: User, attrs: Attributes) -> None:
        allowed, _ = self.allows(user, attrs)
        if allowed:
            if attrs.resource_request and MASTERS not in user.groups:
                resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
                self.grants.add((user.name, attrs.verb, attrs.group, resource))
            return
        error = attrs.forbidden(user.name)
        self.denials.append(Denial(user.name, attrs, error.message))
        raise error

    def review(self, kind: str, api_version: str, body: JSON, user: User) -> JSON:
        """Answer an access, rules or token review from the same authenticator and authorizer."""
        answer = {**body, "apiVersion": api_version, "kind": kind}
        answer.setdefault("metadata", {})
        spec = body.get("spec") or {}
        if kind == "TokenReview":
            reviewed = self.user_of(str(spec.get("token") or ""))
            status: JSON = {"authenticated": reviewed is not None, "audiences": spec.get("audiences") or []}
            if reviewed is not None:
                status["user"] = reviewed.info()
        elif kind == "SelfSubjectReview":
            status = {"userInfo": user.info()}
        elif kind == "SelfSubjectRulesReview":
            status = self._rules_status(self.rules_for(user, str(spec.get("namespace") or "")))
        else:
            if kind in ("SubjectAccessReview", "LocalSubjectAccessReview"):
                user = User(str(spec.get("user") or ""), tuple(spec.get("groups") or ()))
            allowed, reason = self.allows(user, _review_attributes(spec, body))
            status = {"allowed": allowed, "reason": reason} if allowed else {"allowed": False}
        answer["status"] = status
        return answer

    @staticmethod
    def _rules_status(rules: list[JSON]) -> JSON:
        resource_rules = [
            {k: r[k] for k in ("verbs", "apiGroups", "resources", "resourceNames") if r.get(k)}
            for r in rules
            if r.get("resources")
        ]
        non_resource = [
            {"verbs": r.get("verbs") or [], "nonResourceURLs": r["nonResourceURLs"]}
            for r in rules
            if r.get("nonResourceURLs")
        ]
        return {"resourceRules": resource_rules, "nonResourceRules": non_resource, "incomplete": False}

    def rules_for(self, user: User, namespace: str) -> list[JSON]:
        """Every rule that applies to `user` in `namespace` (SelfSubjectRulesReview)."""
        if MASTERS in user.groups:
            return [
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                {"nonResourceURLs": ["*"], "verbs": ["*"]},
            ]
        return [rule for _, rules in self._bound_rules(user, namespace) for rule in rules]

    def _bound_rules(self, user: User, namespace: str) -> Iterator[tuple[str, list[JSON]]]:
        for binding in self.store.iter((RBAC_GROUP, "clusterrolebindings"), None):
            if _binds(binding, user, ""):
                yield _describe(binding, user), self._role_rules(binding, "")
        if not namespace:
            return
        for binding in self.store.iter((RBAC_GROUP, "rolebindings"), namespace):
            if _binds(binding, user, namespace):
                yield _describe(binding, user), self._role_rules(binding, namespace)

    def _role_rules(self, binding: JSON, namespace: str) -> list[JSON]:
        ref = binding.get("roleRef") or {}
        if ref.get("kind") == "ClusterRole":
            role = self.store.get((RBAC_GROUP, "clusterroles"), "", str(ref.get("name")))
        elif ref.get("kind") == "Role" and namespace:
            role = self.store.get((RBAC_GROUP, "roles"), namespace, str(ref.get("name")))
        else:
            role = None
        return list((role or {}).get("rules") or [])


def _review_attributes(spec: JSON, body: JSON) -> Attributes:
    resource = spec.get("resourceAttributes")
    if isinstance(resource, dict):
        namespace = str(resource.get("namespace") or "")
        if body.get("kind") == "LocalSubjectAccessReview":
            namespace = str((body.get("metadata") or {}).get("namespace") or namespace)
        return Attributes(
            verb=str(resource.get("verb") or ""),
            resource_request=True,
            group=str(resource.get("group") or ""),
            resource=str(resource.get("resource") or ""),
            subresource=str(resource.get("subresource") or ""),
            namespace=namespace,
            name=str(resource.get("name") or ""),
        )
    other = spec.get("nonResourceAttributes") or {}
    return Attributes(
        verb=str(other.get("verb") or ""), resource_request=False, path=str(other.get("path") or "")
    )


def _binds(binding: JSON, user: User, namespace: str) -> bool:
    for subject in binding.get("subjects") or []:
        kind, name = subject.get("kind"), subject.get("name")
        if kind == "User" and name == user.name:
            return True
        if kind == "Group" and name in user.groups:
            return True
        if kind == "ServiceAccount":
            account_ns = subject.get("namespace") or namespace
            if user.name == f"system:serviceaccount:{account_ns}:{name}":
                return True
    return False


def _describe(binding: JSON, user: User) -> str:
    meta = binding["metadata"]
    ref = binding.get("roleRef") or {}
    kind = "RoleBinding" if meta.get("namespace") else "ClusterRoleBinding"
    where = f"/{meta['namespace']}" if meta.get("namespace") else ""
    return f'{kind} "{meta["name"]}{where}" of {ref.get("kind")} "{ref.get("name")}" to {user.name}'
