"""Commit message templates: the Go text/template subset Flux users write, over Flux's data."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from libs.setters import Change, ObjectIdentifier, Result, TemplateError, render, uses_field

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class Auto:
    Name: str
    Namespace: str

    def __str__(self) -> str:
        return f"{self.Namespace}/{self.Name}"


DEPLOY = ObjectIdentifier("apps/v1", "Deployment", "web", "prod")
CM = ObjectIdentifier("v1", "ConfigMap", "cfg", "prod")
CHANGED = Result(
    {
        "b/deploy.yaml": {DEPLOY: [Change("app:1.0", "app:1.1", "flux-system:app")]},
        "a/cm.yaml": {CM: [Change("1.0", "1.1", "flux-system:app:tag")]},
    }
)
DATA = {"AutomationObject": Auto("auto", "flux-system"), "Changed": CHANGED, "Values": {"env": "prod"}}

# The example from Flux's ImageUpdateAutomation documentation.
FLUX_DOC_TEMPLATE = """Automated image update

Automation name: {{ .AutomationObject }}

Files:
{{ range $filename, $_ := .Changed.FileChanges -}}
- {{ $filename }}
{{ end -}}

Objects:
{{ range $resource, $changes := .Changed.Objects -}}
- {{ $resource.Kind }} {{ $resource.Name }}
  Changes:
{{- range $_, $change := $changes }}
    - {{ $change.OldValue }} -> {{ $change.NewValue }}
{{ end -}}
{{ end -}}
"""


def test_flux_documentation_example() -> None:
    assert render(FLUX_DOC_TEMPLATE, DATA) == (
        "Automated image update\n\n"
        "Automation name: flux-system/auto\n\n"
        "Files:\n- a/cm.yaml\n- b/deploy.yaml\n"
        "Objects:\n"
        "- Deployment web\n  Changes:\n    - app:1.0 -> app:1.1\n"
        "- ConfigMap cfg\n  Changes:\n    - 1.0 -> 1.1\n"
    )


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ .AutomationObject.Namespace }}/{{ .AutomationObject.Name }}", "flux-system/auto"),
        ("[ci skip] {{ .Values.env }}{{ .Values.missing }}", "[ci skip] prod<no value>"),
        ("{{ range .Changed.Changes }}{{ .NewValue }};{{ end }}", "1.1;app:1.1;"),
        ("{{ len .Changed.Changes }} changes", "2 changes"),
        ('{{ if eq .Values.env "prod" }}P{{ else if .Values.x }}X{{ else }}O{{ end }}', "P"),
        ('{{ if eq .Values.env "dev" }}P{{ else if .Values.x }}X{{ else }}O{{ end }}', "O"),
        ("{{ with .Values.env }}env={{ . }}{{ end }}", "env=prod"),
        ("{{ range .Values.none }}x{{ else }}empty{{ end }}", "empty"),
        ('{{ printf "%s-%d" .Values.env 3 }}', "prod-3"),
        ("{{ .Values.env | upper }}", "PROD"),
        ("{{ $n := .AutomationObject.Name }}{{ $n }}", "auto"),
        ("a  {{- /* comment */ -}}  b", "ab"),
        (
            "{{ range $i, $c := .Changed.Changes }}{{ if $i }},{{ end }}{{ $c.Setter }}{{ end }}",
            "flux-system:app:tag,flux-system:app",
        ),
        ("{{ range .Changed.Changes }}{{ $.AutomationObject.Name }}{{ break }}{{ end }}", "auto"),
        ('{{ index .Values "env" }}', "prod"),
        ('{{ if and .Values.env (eq .AutomationObject.Name "auto") }}yes{{ end }}', "yes"),
        ("{{ or .Values.missing .Values.env }}", "prod"),
        ('{{ range .Changed.Changes }}{{ .NewValue | splitList ":" | last }};{{ end }}', "1.1;1.1;"),
        ("{{ .AutomationObject.Name | trunc 2 }}", "au"),
        ('{{ print 1 2 "a" 3 }}|{{ println 1 "a" }}', "1 2a3|1 a\n"),
    ],
)
def test_constructs(template: str, expected: str) -> None:
    assert render(template, DATA) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ .Nope }}", "<no value>"),
        ("{{ .AutomationObject.Nope }}", "can't evaluate field Nope"),
        ("{{ .AutomationObject.__class__ }}", "exported"),
        ('{{ env "HOME" }}', 'function "env" not defined'),
        ('{{ template "x" }}', "template"),
        ("{{ if .Values }}", "unclosed"),
        ("{{ end }}", "unexpected"),
        ("{{ .Values", "unclosed action"),
    ],
)
def test_errors_name_the_construct(template: str, message: str) -> None:
    if message == "<no value>":
        assert render(template, DATA) == "<no value>"
        return
    with pytest.raises(TemplateError, match=message):
        render(template, DATA)


def test_updated_field_is_detected() -> None:
    assert uses_field("{{ range .Updated.Images }}{{ . }}{{ end }}", "Updated")
    assert uses_field("{{ $.Updated }}", "Updated")
    assert not uses_field("Updated images {{ .Changed.Changes }}", "Updated")
    assert not uses_field("{{ .UpdatedAt }}", "Updated")
