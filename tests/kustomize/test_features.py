"""Feature tests beyond the corpus: small kustomization trees whose expected output was
recorded with ``kubectl kustomize`` (kustomize v5.5.0) and pasted here."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from libs.kustomize import build

pytestmark = pytest.mark.unit


def _write_tree(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


# namePrefix + nameSuffix + namespace + commonLabels/commonAnnotations over a mix of kinds;
# configMap from a binary and a text file, secret from an env file, generatorOptions labels;
# references: Role resourceNames, RoleBinding roleRef/subjects, ServiceAccount imagePullSecrets,
# Job serviceAccountName/envFrom/volumes, Ingress backend; Service selector created.
PREFIX_REFS_FILES = {
    "data.bin": b"\x00\x01\xff\xfe",
    "kustomization.yaml": dedent(
        """\
        namePrefix: p-
        nameSuffix: -s
        namespace: ns1
        commonLabels:
          app: x
        commonAnnotations:
          note: "yes"
        resources:
        - r.yaml
        configMapGenerator:
        - name: cfg
          files:
          - bin=data.bin
          - text.txt
        secretGenerator:
        - name: sec
          envs:
          - s.env
          type: Opaque
        generatorOptions:
          labels:
            gen: "1"
        """
    ),
    "r.yaml": dedent(
        """\
        apiVersion: v1
        kind: Service
        metadata:
          name: svc
        spec:
          ports:
          - port: 80
        ---
        apiVersion: rbac.authorization.k8s.io/v1
        kind: Role
        metadata:
          name: r
        rules:
        - apiGroups: [""]
          resources: [configmaps]
          resourceNames: [cfg, other]
          verbs: [get]
        ---
        apiVersion: rbac.authorization.k8s.io/v1
        kind: RoleBinding
        metadata:
          name: rb
        roleRef:
          apiGroup: rbac.authorization.k8s.io
          kind: Role
          name: r
        subjects:
        - kind: ServiceAccount
          name: sa
        ---
        apiVersion: v1
        kind: ServiceAccount
        metadata:
          name: sa
        imagePullSecrets:
        - name: sec
        ---
        apiVersion: batch/v1
        kind: Job
        metadata:
          name: j
        spec:
          template:
            spec:
              serviceAccountName: sa
              containers:
              - name: c
                image: busybox
                envFrom:
                - secretRef:
                    name: sec
                volumeMounts:
                - name: v
                  mountPath: /v
              volumes:
              - name: v
                configMap:
                  name: cfg
        ---
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata:
          name: ing
        spec:
          rules:
          - http:
              paths:
              - path: /
                pathType: Prefix
                backend:
                  service:
                    name: svc
                    port:
                      number: 80
        """
    ),
    "s.env": dedent(
        """\
        A=1
        B=two words
        """
    ),
    "text.txt": "hello\nworld",
}
PREFIX_REFS_EXPECTED = dedent(
    """\
        apiVersion: v1
        imagePullSecrets:
        - name: p-sec-s-k2tkd4k7k8
        kind: ServiceAccount
        metadata:
          annotations:
            note: "yes"
          labels:
            app: x
          name: p-sa-s
          namespace: ns1
        ---
        apiVersion: rbac.authorization.k8s.io/v1
        kind: Role
        metadata:
          annotations:
            note: "yes"
          labels:
            app: x
          name: p-r-s
          namespace: ns1
        rules:
        - apiGroups:
          - ""
          resourceNames:
          - p-cfg-s-t5gf4622ch
          - other
          resources:
          - configmaps
          verbs:
          - get
        ---
        apiVersion: rbac.authorization.k8s.io/v1
        kind: RoleBinding
        metadata:
          annotations:
            note: "yes"
          labels:
            app: x
          name: p-rb-s
          namespace: ns1
        roleRef:
          apiGroup: rbac.authorization.k8s.io
          kind: Role
          name: p-r-s
        subjects:
        - kind: ServiceAccount
          name: p-sa-s
          namespace: ns1
        ---
        apiVersion: v1
        binaryData:
          bin: AAH//g==
        data:
          text.txt: |-
            hello
            world
        kind: ConfigMap
        metadata:
          annotations:
            note: "yes"
          labels:
            app: x
            gen: "1"
          name: p-cfg-s-t5gf4622ch
          namespace: ns1
        ---
        apiVersion: v1
        data:
          A: MQ==
          B: dHdvIHdvcmRz
        kind: Secret
        metadata:
          annotations:
            note: "yes"
          labels:
            app: x
            gen: "1"
          name: p-sec-s-k2tkd4k7k8
          namespace: ns1
        type: Opaque
        ---
        apiVersion: v1
        kind: Service
        metadata:
          annotations:
            note: "yes"
          labels:
            app: x
          name: p-svc-s
          namespace: ns1
        spec:
          ports:
          - port: 80
          selector:
            app: x
        ---
        apiVersion: batch/v1
        kind: Job
        metadata:
          annotations:
            note: "yes"
          labels:
            app: x
          name: p-j-s
          namespace: ns1
        spec:
          template:
            metadata:
              annotations:
                note: "yes"
              labels:
                app: x
            spec:
              containers:
              - envFrom:
                - secretRef:
                    name: p-sec-s-k2tkd4k7k8
                image: busybox
                name: c
                volumeMounts:
                - mountPath: /v
                  name: v
              serviceAccountName: p-sa-s
              volumes:
              - configMap:
                  name: p-cfg-s-t5gf4622ch
                name: v
        ---
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata:
          annotations:
            note: "yes"
          labels:
            app: x
          name: p-ing-s
          namespace: ns1
        spec:
          rules:
          - http:
              paths:
              - backend:
                  service:
                    name: p-svc-s
                    port:
                      number: 80
                path: /
                pathType: Prefix
        """
)

# patches: SMP with null deletion, $patch: delete in a merge list, $patch: replace on a list,
# a multi-document SMP patch, a JSON 6902 patch written as JSON with a kind-only target.
PATCHES_FILES = {
    "d.yaml": dedent(
        """\
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: d
          labels:
            remove: me
            keep: me
        spec:
          template:
            spec:
              containers:
              - name: a
                image: a
                args: ["y", "z"]
                env:
                - name: E1
                  value: "1"
                - name: E2
                  value: "2"
              volumes:
              - name: v1
                emptyDir: {}
              - name: v2
                emptyDir: {}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: c1
        data:
          k: v
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: c2
        data:
          k: v
        """
    ),
    "kustomization.yaml": dedent(
        """\
        resources:
        - d.yaml
        patches:
        - patch: |-
            apiVersion: apps/v1
            kind: Deployment
            metadata:
              name: d
              labels:
                remove: null
            spec:
              template:
                spec:
                  containers:
                  - name: a
                    args: ["x"]
                    env:
                    - name: E1
                      $patch: delete
                  volumes:
                  - $patch: replace
                  - name: only
                    emptyDir: {}
        - patch: |-
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: c1
            data:
              k: v2
            ---
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: c2
            data:
              k: v3
        - target:
            kind: ConfigMap
          patch: |-
            [{"op": "add", "path": "/data/added", "value": "1"}]
        """
    ),
}
PATCHES_EXPECTED = dedent(
    """\
        apiVersion: v1
        data:
          added: "1"
          k: v2
        kind: ConfigMap
        metadata:
          name: c1
        ---
        apiVersion: v1
        data:
          added: "1"
          k: v3
        kind: ConfigMap
        metadata:
          name: c2
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          labels:
            keep: me
          name: d
        spec:
          template:
            spec:
              containers:
              - args:
                - x
                env:
                - name: E2
                  value: "2"
                image: a
                name: a
              volumes:
              - emptyDir: {}
                name: only
        """
)

# images: newName+newTag, digest replacing tag@digest, a custom field added by configurations;
# configurations also add a commonLabels fieldSpec for a custom kind.
IMAGES_FILES = {
    "conf.yaml": dedent(
        """\
        images:
        - path: spec/runner/image
          kind: Runner
        commonLabels:
        - path: spec/sel
          kind: Runner
          create: true
        """
    ),
    "kustomization.yaml": dedent(
        """\
        resources:
        - r.yaml
        configurations:
        - conf.yaml
        images:
        - name: app
          newName: reg.io/app
          newTag: v2
        - name: side
          digest: sha256:abc
        """
    ),
    "r.yaml": dedent(
        """\
        apiVersion: ex.com/v1
        kind: Runner
        metadata:
          name: r
        spec:
          runner:
            image: app:v1
          other:
            image: app:v1
        ---
        apiVersion: apps/v1
        kind: DaemonSet
        metadata:
          name: ds
        spec:
          template:
            spec:
              initContainers:
              - name: i
                image: side:1@sha256:old
              containers:
              - name: c
                image: app
        """
    ),
}
IMAGES_EXPECTED = dedent(
    """\
        apiVersion: apps/v1
        kind: DaemonSet
        metadata:
          name: ds
        spec:
          template:
            spec:
              containers:
              - image: reg.io/app:v2
                name: c
              initContainers:
              - image: side@sha256:abc
                name: i
        ---
        apiVersion: ex.com/v1
        kind: Runner
        metadata:
          name: r
        spec:
          other:
            image: app:v1
          runner:
            image: reg.io/app:v2
        """
)

# go-yaml v3 typing of inputs (1.10, 0o17, 6.02e23, folded scalars, anchors/aliases) and
# go-yaml v2 quoting, folding and block scalars on output.
SCALARS_FILES = {
    "a.yaml": 'apiVersion: v1\nkind: List\nitems: []\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: anchors\n  labels: &l\n    a: b\n  annotations: *l\ndata:\n  ver: 1.10\n  octal: 0o17\n  big: 123456789012\n  neg: -5\n  f: 3.14159\n  exp: 6.02e23\n  t: true\n  n: null\n  e: ""\n  s: \'single\'\n  multi: |\n    line1\n      indented\n    line3\n  folded: >\n    folded text\n    here\n  tabbed: "a\\tb"\n  url: http://example.com/a?b=c#frag\n  colonspace: "a: b"\n  dashstart: "- item"\n  questionmark: "? x"\n  amp: "&anchor"\n  bang: "!tag"\n  pipe: "|x"\n  gt: ">x"\n  pct: "%x"\n  at: "@x"\n  backtick: "`x"\n  brackets: "[x]"\n  braces: "{x}"\n  comma: "a, b"\n  hashmid: "a#b c # d"\n  trailing: "x "\n  leadspace: " x"\n  emptyline: "a\\n\\nb\\n"\n  crlf: "a\\r\\nb"\n  longword: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa bbb\n  longsingle: "it\'s a long string that needs single quotes: because of colon space and it is quite long indeed yes"\n',
    "kustomization.yaml": dedent(
        """\
        resources:
        - a.yaml
        commonAnnotations:
          num: "1"
        """
    ),
}
SCALARS_EXPECTED = "apiVersion: v1\ndata:\n  amp: '&anchor'\n  at: '@x'\n  backtick: '`x'\n  bang: '!tag'\n  big: 123456789012\n  braces: '{x}'\n  brackets: '[x]'\n  colonspace: 'a: b'\n  comma: a, b\n  crlf: \"a\\r\\nb\"\n  dashstart: '- item'\n  e: \"\"\n  emptyline: |\n    a\n\n    b\n  exp: 6.02e+23\n  f: 3.14159\n  folded: |\n    folded text here\n  gt: '>x'\n  hashmid: 'a#b c # d'\n  leadspace: ' x'\n  longsingle: 'it''s a long string that needs single quotes: because of colon space\n    and it is quite long indeed yes'\n  longword: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n    bbb\n  multi: |\n    line1\n      indented\n    line3\n  \"n\": null\n  neg: -5\n  octal: 15\n  pct: '%x'\n  pipe: '|x'\n  questionmark: '? x'\n  s: single\n  t: true\n  tabbed: \"a\\tb\"\n  trailing: 'x '\n  url: http://example.com/a?b=c#frag\n  ver: 1.1\nkind: ConfigMap\nmetadata:\n  annotations:\n    a: b\n    num: \"1\"\n  labels:\n    a: b\n  name: anchors\n"

# an overlay label changes the value a base commonLabels wrote everywhere (kyaml shares the
# node), but not selectors that held the key before.
LABEL_ALIAS_FILES = {
    "base/app.yaml": dedent(
        """\
        apiVersion: v1
        kind: Service
        metadata:
          name: web
        spec:
          selector:
            stage: original
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
        spec:
          selector:
            matchLabels:
              app: web
          template:
            metadata:
              labels:
                app: web
            spec:
              containers:
              - name: web
                image: web:1
        """
    ),
    "base/kustomization.yaml": dedent(
        """\
        commonLabels:
          stage: base
        resources:
        - app.yaml
        """
    ),
    "overlay/kustomization.yaml": dedent(
        """\
        resources:
        - ../base
        labels:
        - pairs:
            stage: staging
            team: blue
        """
    ),
}
LABEL_ALIAS_EXPECTED = dedent(
    """\
        apiVersion: v1
        kind: Service
        metadata:
          labels:
            stage: staging
            team: blue
          name: web
        spec:
          selector:
            stage: base
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          labels:
            stage: staging
            team: blue
          name: web
        spec:
          selector:
            matchLabels:
              app: web
              stage: staging
          template:
            metadata:
              labels:
                app: web
                stage: staging
            spec:
              containers:
              - image: web:1
                name: web
        """
)

# legacy order inside one kind: by namespace (none last), then name; empty annotations dropped,
# empty labels/data kept.
SORT_FILES = {
    "kustomization.yaml": dedent(
        """\
        resources:
        - r.yaml
        """
    ),
    "r.yaml": dedent(
        """\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: a
          annotations: {}
          labels: {}
        data: {}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: b
          namespace: default
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: a
          namespace: zz
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: b
          namespace: aa
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: c
        """
    ),
}
SORT_EXPECTED = dedent(
    """\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: b
          namespace: aa
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: b
          namespace: default
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: a
          namespace: zz
        ---
        apiVersion: v1
        data: {}
        kind: ConfigMap
        metadata:
          labels: {}
          name: a
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: c
        """
)


CASES = {
    "prefix-suffix-namespace-references": (PREFIX_REFS_FILES, ".", PREFIX_REFS_EXPECTED),
    "patches-directives-multidoc-json": (PATCHES_FILES, ".", PATCHES_EXPECTED),
    "images-configurations-digests": (IMAGES_FILES, ".", IMAGES_EXPECTED),
    "scalar-types-quoting-anchors": (SCALARS_FILES, ".", SCALARS_EXPECTED),
    "labels-overlay-aliasing": (LABEL_ALIAS_FILES, "overlay", LABEL_ALIAS_EXPECTED),
    "legacy-sort-namespaces-empty-maps": (SORT_FILES, ".", SORT_EXPECTED),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_feature(name: str, tmp_path: Path) -> None:
    files, root, expected = CASES[name]
    _write_tree(tmp_path, files)
    assert build(tmp_path / root).to_yaml() == expected


SCENARIOS = Path(__file__).parent / "data/scenarios"


@pytest.mark.parametrize("name", sorted(p.name for p in SCENARIOS.iterdir()))
def test_generated_scenario(name: str) -> None:
    """Randomly generated multi-level trees (bases, overlays, a component) on which an earlier
    version differed from kustomize; expected.yaml is kubectl kustomize's output."""
    case = SCENARIOS / name
    root = case / (case / "root").read_text().strip()
    assert build(root).to_yaml() == (case / "expected.yaml").read_text()
