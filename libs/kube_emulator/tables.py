"""`meta.k8s.io/v1 Table` rendering: what `kubectl get` prints, server-side like the real server."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .kinds import ResourceType

JSON = dict[str, Any]
Cell = Callable[[JSON], Any]


def age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    try:
        created = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<unknown>"
    seconds = max(0, int((datetime.now(UTC) - created).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def json_path(obj: Any, path: str) -> Any:
    """A `.a.b[0].c` path (the subset additionalPrinterColumns use)."""
    cur = obj
    for part in [p for p in re.split(r"\.(?![^\[]*\])", path.strip().lstrip(".")) if p]:
        m = re.fullmatch(r"([^\[]+)(?:\[(\d+)\])?", part)
        if not m or not isinstance(cur, dict):
            return None
        cur = cur.get(m.group(1))
        if m.group(2) is not None:
            if not isinstance(cur, list) or int(m.group(2)) >= len(cur):
                return None
            cur = cur[int(m.group(2))]
    return cur


def _spec(obj: JSON) -> JSON:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def _status(obj: JSON) -> JSON:
    status = obj.get("status")
    return status if isinstance(status, dict) else {}


def _ports(obj: JSON) -> str:
    ports = [f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in _spec(obj).get("ports") or []]
    return ",".join(ports) or "<none>"


def _job_status(obj: JSON) -> str:
    for cond in _status(obj).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed", "Suspended"):
            return str(cond["type"])
    return "Running"


def _containers_ready(obj: JSON) -> str:
    total = len(_spec(obj).get("containers") or [])
    ready = sum(1 for c in _status(obj).get("containerStatuses") or [] if c.get("ready"))
    return f"{ready}/{total}"


_BUILTIN: dict[tuple[str, str], list[tuple[str, str, Cell]]] = {
    ("", "namespaces"): [("Status", "string", lambda o: _status(o).get("phase", ""))],
    ("", "configmaps"): [
        ("Data", "integer", lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {}))
    ],
    ("", "secrets"): [
        ("Type", "string", lambda o: o.get("type", "")),
        ("Data", "integer", lambda o: len(o.get("data") or {})),
    ],
    ("", "services"): [
        ("Type", "string", lambda o: _spec(o).get("type", "")),
        ("Cluster-IP", "string", lambda o: _spec(o).get("clusterIP", "")),
        ("External-IP", "string", lambda o: ",".join(_spec(o).get("externalIPs") or []) or "<none>"),
        ("Port(s)", "string", _ports),
    ],
    ("", "serviceaccounts"): [("Secrets", "integer", lambda o: len(o.get("secrets") or []))],
    ("", "pods"): [
        ("Ready", "string", _containers_ready),
        ("Status", "string", lambda o: _status(o).get("phase", "Pending")),
        ("Restarts", "string", lambda o: "0"),
    ],
    ("apps", "deployments"): [
        ("Ready", "string", lambda o: f"{_status(o).get('readyReplicas', 0)}/{_spec(o).get('replicas', 1)}"),
        ("Up-to-date", "integer", lambda o: _status(o).get("updatedReplicas", 0)),
        ("Available", "integer", lambda o: _status(o).get("availableReplicas", 0)),
    ],
    ("apps", "statefulsets"): [
        ("Ready", "string", lambda o: f"{_status(o).get('readyReplicas', 0)}/{_spec(o).get('replicas', 1)}")
    ],
    ("apps", "daemonsets"): [
        ("Desired", "integer", lambda o: _status(o).get("desiredNumberScheduled", 0)),
        ("Current", "integer", lambda o: _status(o).get("currentNumberScheduled", 0)),
        ("Ready", "integer", lambda o: _status(o).get("numberReady", 0)),
        ("Up-to-date", "integer", lambda o: _status(o).get("updatedNumberScheduled", 0)),
        ("Available", "integer", lambda o: _status(o).get("numberAvailable", 0)),
    ],
    ("apps", "replicasets"): [
        ("Desired", "integer", lambda o: _spec(o).get("replicas", 1)),
        ("Current", "integer", lambda o: _status(o).get("replicas", 0)),
        ("Ready", "integer", lambda o: _status(o).get("readyReplicas", 0)),
    ],
    ("batch", "jobs"): [
        ("Status", "string", _job_status),
        (
            "Completions",
            "string",
            lambda o: f"{_status(o).get('succeeded', 0)}/{_spec(o).get('completions', 1)}",
        ),
    ],
    ("batch", "cronjobs"): [
        ("Schedule", "string", lambda o: _spec(o).get("schedule", "")),
        ("Suspend", "boolean", lambda o: bool(_spec(o).get("suspend", False))),
        ("Active", "integer", lambda o: len(_status(o).get("active") or [])),
    ],
}


def _printer_cell(path: str, is_date: bool) -> Cell:
    def cell(obj: JSON) -> Any:
        value = json_path(obj, path)
        return age(value) if is_date and isinstance(value, str) else value

    return cell


def _column(name: str, ctype: str, fmt: str = "", priority: int = 0, description: str = "") -> JSON:
    return {
        "name": name,
        "type": ctype,
        "format": fmt,
        "description": description or name,
        "priority": priority,
    }


def table(rt: ResourceType, version: str, objects: list[JSON], list_rv: str | None) -> JSON:
    columns: list[JSON] = [_column("Name", "string", "name")]
    cells: list[Cell] = []
    printer = rt.printer_columns.get(version, []) if rt.is_custom else []
    has_age = False
    for col in printer:
        path = str(col.get("jsonPath", ""))
        columns.append(
            _column(
                str(col.get("name", "")),
                str(col.get("type", "string")),
                str(col.get("format", "")),
                int(col.get("priority", 0)),
                str(col.get("description", "")),
            )
        )
        cells.append(_printer_cell(path, col.get("type") == "date"))
        has_age = has_age or path == ".metadata.creationTimestamp"
    for name, ctype, cell in _BUILTIN.get(rt.key, []):
        columns.append(_column(name, ctype))
        cells.append(cell)
    if not has_age:
        columns.append(_column("Age", "string"))
        cells.append(lambda o: age(o["metadata"].get("creationTimestamp")))
    rows = [
        {
            "cells": [obj["metadata"]["name"], *(cell(obj) for cell in cells)],
            "object": {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            },
        }
        for obj in objects
    ]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": list_rv} if list_rv else {},
        "columnDefinitions": columns,
        "rows": rows,
    }
