"""Setter markers: exactly Flux's syntax, every other byte of the file preserved."""

from __future__ import annotations

from pathlib import Path

import pytest

from libs.setters import Change, ImageRef, ObjectIdentifier, SetterError, apply_setters, update_text

pytestmark = pytest.mark.unit

POLICIES = {
    "flux-system:app": ImageRef("ghcr.io/org/app", "1.2.0"),
    "flux-system:pinned": ImageRef("ghcr.io/org/pinned", "2.0.0", "sha256:" + "ab" * 32),
}

DEPLOYMENT = """\
# a leading comment, kept
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app   # trailing comment
  namespace: prod
spec:
  template:
    spec:
      containers:
        - name: app
          image: ghcr.io/org/app:1.0.0 # {"$imagepolicy": "flux-system:app"}
          args: [ "--odd",   'spacing' ]
        - name: side
          image:    "ghcr.io/org/pinned:1.0.0"   #   {"$imagepolicy": "flux-system:pinned"}
"""


def test_full_ref_markers_rewrite_only_the_scalar() -> None:
    out, edits = update_text(DEPLOYMENT, POLICIES)
    expected = DEPLOYMENT.replace("ghcr.io/org/app:1.0.0 #", "ghcr.io/org/app:1.2.0 #").replace(
        '"ghcr.io/org/pinned:1.0.0"', '"ghcr.io/org/pinned:2.0.0@sha256:' + "ab" * 32 + '"'
    )
    assert out == expected
    assert [(e.setter, e.old, e.new) for e in edits] == [
        ("flux-system:app", "ghcr.io/org/app:1.0.0", "ghcr.io/org/app:1.2.0"),
        ("flux-system:pinned", "ghcr.io/org/pinned:1.0.0", "ghcr.io/org/pinned:2.0.0@sha256:" + "ab" * 32),
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            'repository: ghcr.io/org/old # {"$imagepolicy": "flux-system:app:name"}\n',
            'repository: ghcr.io/org/app # {"$imagepolicy": "flux-system:app:name"}\n',
        ),
        (
            'tag: 1.0.0 # {"$imagepolicy": "flux-system:app:tag"}\n',
            'tag: 1.2.0 # {"$imagepolicy": "flux-system:app:tag"}\n',
        ),
        (
            '  newTag: \'1.0.0\' # {"$imagepolicy": "flux-system:app:tag"}\n',
            '  newTag: \'1.2.0\' # {"$imagepolicy": "flux-system:app:tag"}\n',
        ),
        (
            'digest: sha256:00 # {"$imagepolicy": "flux-system:pinned:digest"}\r\n',
            "digest: sha256:" + "ab" * 32 + ' # {"$imagepolicy": "flux-system:pinned:digest"}\r\n',
        ),
        (
            '  - ghcr.io/org/app:0.1 # {"$imagepolicy": "flux-system:app"}\n',
            '  - ghcr.io/org/app:1.2.0 # {"$imagepolicy": "flux-system:app"}\n',
        ),
        (
            '"quoted key": x # {"$imagepolicy":"flux-system:app:tag"}\n',
            '"quoted key": 1.2.0 # {"$imagepolicy":"flux-system:app:tag"}\n',
        ),
    ],
)
def test_marker_variants(line: str, expected: str) -> None:
    assert update_text(line, POLICIES)[0] == expected


def test_plain_scalar_that_would_not_read_as_a_string_is_quoted() -> None:
    policies = {"ns:p": ImageRef("r", "1.10")}
    out, _ = update_text('tag: 1.9.0 # {"$imagepolicy": "ns:p:tag"}\n', policies)
    assert out == 'tag: "1.10" # {"$imagepolicy": "ns:p:tag"}\n'


@pytest.mark.parametrize(
    "text",
    [
        'image: app:1 # {"$imagepolicy": "flux-system:unknown"}\n',  # no such policy
        'digest: x # {"$imagepolicy": "flux-system:app:digest"}\n',  # no digest reflected
        'image: app:1 # {"$imagepolicy": "flux-system:app:bogus"}\n',  # unknown field
        'image: app:1 # {"$imagepolicy": "flux-system/app"}\n',  # slash, not colon
        'image: app:1 # {"$imagepolicy": flux-system:app}\n',  # not JSON
        'image: ghcr.io/org/app:1.2.0 # {"$imagepolicy": "flux-system:app"}\n',  # already current
        "image: app:1 # $imagepolicy flux-system:app\n",
    ],
)
def test_lines_left_alone(text: str) -> None:
    assert update_text(text, POLICIES) == (text, [])


def test_marker_on_a_block_scalar_is_an_error() -> None:
    with pytest.raises(SetterError, match="flux-system:app"):
        update_text('image: | # {"$imagepolicy": "flux-system:app"}\n  x\n', POLICIES)


def _tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


KUSTOMIZATION = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
images:
- name: app
  newName: ghcr.io/org/app # {"$imagepolicy": "flux-system:app:name"}
  newTag: 0.9.0 # {"$imagepolicy": "flux-system:app:tag"}
"""

HELMRELEASE = """\
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: web
  namespace: apps
spec:
  values:
    image:
      repository: ghcr.io/org/app # {"$imagepolicy": "flux-system:app:name"}
      tag: "1.0.0" # {"$imagepolicy": "flux-system:app:tag"}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: other
data:
  image: ghcr.io/org/app:0.0.1 # {"$imagepolicy": "flux-system:app"}
"""


def test_apply_setters_over_a_tree(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {
            "apps/deploy.yaml": DEPLOYMENT,
            "apps/kustomization.yaml": KUSTOMIZATION,
            "apps/release.yml": HELMRELEASE,
            "apps/chart/templates/t.yaml": "image: {{ .Values.image }}\n",
            "apps/notes.txt": 'image: x # {"$imagepolicy": "flux-system:app"}\n',
            "apps/unmarked.yaml": 'a: b # {"$other": 1}\n',
        },
    )
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    result = apply_setters(tmp_path, POLICIES)
    assert sorted(result.FileChanges) == ["apps/deploy.yaml", "apps/kustomization.yaml", "apps/release.yml"]
    deploy = ObjectIdentifier("apps/v1", "Deployment", "app", "prod")
    assert result.FileChanges["apps/deploy.yaml"][deploy][0] == Change(
        "ghcr.io/org/app:1.0.0", "ghcr.io/org/app:1.2.0", "flux-system:app"
    )
    kust = ObjectIdentifier("kustomize.config.k8s.io/v1beta1", "Kustomization", "", "")
    assert result.FileChanges["apps/kustomization.yaml"][kust] == [
        Change("0.9.0", "1.2.0", "flux-system:app:tag")
    ]
    release = result.FileChanges["apps/release.yml"]
    assert release[ObjectIdentifier("helm.toolkit.fluxcd.io/v2", "HelmRelease", "web", "apps")] == [
        Change("1.0.0", "1.2.0", "flux-system:app:tag")
    ]
    assert release[ObjectIdentifier("v1", "ConfigMap", "other", "")] == [
        Change("ghcr.io/org/app:0.0.1", "ghcr.io/org/app:1.2.0", "flux-system:app")
    ]
    assert len(result.Changes()) == 5
    assert len(result.Objects()) == 4
    after = (tmp_path / "apps/release.yml").read_text()
    assert after == HELMRELEASE.replace('"1.0.0"', '"1.2.0"').replace("app:0.0.1", "app:1.2.0")
    for untouched in ("apps/chart/templates/t.yaml", "apps/notes.txt", "apps/unmarked.yaml"):
        assert (tmp_path / untouched).read_bytes() == before[tmp_path / untouched]
    # A second pass finds nothing to change.
    assert not apply_setters(tmp_path, POLICIES)


def test_invalid_yaml_in_a_marked_file_names_the_file(tmp_path: Path) -> None:
    _tree(tmp_path, {"bad.yaml": 'a: [\nimage: x # {"$imagepolicy": "flux-system:app"}\n'})
    with pytest.raises(SetterError, match=r"bad\.yaml: invalid YAML"):
        apply_setters(tmp_path, POLICIES)


def test_marker_text_inside_strings_and_standalone_comments_is_not_a_marker(tmp_path: Path) -> None:
    text = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: embedded
data:
  values.yaml: |
    image: ghcr.io/org/app:1.0.0 # {"$imagepolicy": "flux-system:app"}
  # {"$imagepolicy": "flux-system:app"}
  quoted: "x # {\\"$imagepolicy\\": \\"flux-system:app\\"}"
  real: ghcr.io/org/app:1.0.0 # {"$imagepolicy": "flux-system:app"}
"""
    _tree(tmp_path, {"cm.yaml": text})
    result = apply_setters(tmp_path, POLICIES)
    assert [c.OldValue for c in result.Changes()] == ["ghcr.io/org/app:1.0.0"]
    assert (tmp_path / "cm.yaml").read_text() == text.replace(
        "real: ghcr.io/org/app:1.0.0", "real: ghcr.io/org/app:1.2.0"
    )
