"""One kustomization directory and its accumulation (kustomize's KustTarget)."""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from libs.kpatch import FieldSchema, PatchError, generic_object_schema, json_patch, schema_for
from libs.kustomize.config import (
    FieldSpec,
    TransformerConfig,
    config_from_openapi,
    default_config,
    merge_specs,
    parse_fieldspec,
)
from libs.kustomize.errors import KustomizeError
from libs.kustomize.generate import GeneratorOptions, make_generated
from libs.kustomize.loader import Loader, LoaderError
from libs.kustomize.replacements import apply_replacements, resolve_untyped, untyped_to_strings
from libs.kustomize.resource import (
    Gvk,
    Resource,
    Selector,
    as_text,
    get_by_id,
    matching_by_any_id,
    select,
)
from libs.kustomize.schema import check_kustomization_types
from libs.kustomize.smp import apply_strategic_merge
from libs.kustomize.transform import (
    ImageUpdate,
    transform_images,
    transform_map_entries,
    transform_name_affix,
    transform_namespace,
    transform_replicas,
)
from libs.kustomize.yamlio import YAMLInputError, dump_document, load_all, load_all_v2

COMPONENT_KIND = "Component"
KUSTOMIZATION_KIND = "Kustomization"

_SUPPORTED_FIELDS = frozenset(
    {
        "apiVersion",
        "kind",
        "metadata",
        "resources",
        "bases",
        "components",
        "namespace",
        "namePrefix",
        "nameSuffix",
        "commonLabels",
        "labels",
        "commonAnnotations",
        "images",
        "replicas",
        "patches",
        "patchesStrategicMerge",
        "patchesJson6902",
        "configMapGenerator",
        "secretGenerator",
        "generatorOptions",
        "configurations",
        "crds",
        "sortOptions",
        "buildMetadata",
        "replacements",
    }
)

# Fields kustomize knows but this implementation deliberately does not run.
UNSUPPORTED_FIELDS: dict[str, str] = {
    "helmCharts": "helm chart inflation is not supported",
    "helmGlobals": "helm chart inflation is not supported",
    "helmChartInflationGenerator": "helm chart inflation is not supported",
    "generators": "generator plugins are not supported",
    "transformers": "transformer plugins are not supported",
    "validators": "validator plugins are not supported",
    "openapi": "custom OpenAPI schemas are not supported",
    "vars": "vars are not supported",
}

_REMOTE_PREFIXES = ("http://", "https://", "git@", "ssh://", "git::", "github.com/", "gitlab.com/", "oci://")


@dataclass(slots=True)
class Accumulator:
    resources: list[Resource] = field(default_factory=list)
    config: TransformerConfig = field(default_factory=TransformerConfig)

    def append(self, new: list[Resource]) -> None:
        registered = {o.cur_id().key for o in self.resources}
        for r in new:
            cur = r.cur_id()
            if cur.key in registered:
                raise KustomizeError(f"may not add resource with an already registered id: {cur}")
            registered.add(cur.key)
            self.resources.append(r)

    def absorb(self, res: Resource) -> None:
        """appendReplaceOrMerge for a generated resource."""
        cur = res.cur_id()
        matches = matching_by_any_id(self.resources, cur)
        if not matches:
            if res.behavior in ("merge", "replace"):
                raise KustomizeError(f"id {cur} does not exist; cannot merge or replace")
            self.resources.append(res)
            return
        if len(matches) > 1:
            ids = ", ".join(str(m.cur_id()) for m in matches)
            raise KustomizeError(f"found multiple objects [{ids}] that could accept merge of {cur}")
        old = matches[0]
        if res.behavior not in ("merge", "replace"):
            raise KustomizeError(f"id {cur} exists; behavior must be merge or replace")
        labels = {**old.labels(), **res.labels()}
        annotations = {**old.annotations(), **res.annotations()}
        meta = res.metadata()
        if labels:
            meta["labels"] = labels
        if annotations:
            meta["annotations"] = annotations
        res.name = old.name
        res.namespace = old.namespace
        if res.behavior == "merge":
            for data_field in ("data", "binaryData"):
                merged = {**(old.obj.get(data_field) or {}), **(res.obj.get(data_field) or {})}
                if merged:
                    res.obj[data_field] = merged
        behavior, needs_hash = res.behavior, res.needs_hash
        res.copy_bookkeeping_from(old)
        # a hash suffix disabled by either generator stays disabled (kustomize v5.5.0 behaviour)
        res.needs_hash = needs_hash and old.needs_hash
        if behavior == "merge" or res.origin is None:
            # merge keeps the original's origin; replace takes the new generator's
            res.origin = old.origin if old.origin is not None else res.origin
        res.transformations = list(old.transformations)
        res.generated = True
        self.resources[self.resources.index(old)] = res


def _origin_text(path: str) -> str:
    return f"path: {_scalar(path)}\n"


def _configured_text(configured_in: str, kind: str, indent: str = "") -> str:
    return (
        f"{indent}configuredIn: {_scalar(configured_in)}\n"
        f"{indent}configuredBy:\n{indent}  apiVersion: builtin\n{indent}  kind: {kind}\n"
    )


def _scalar(value: str) -> str:
    return dump_document(value).rstrip("\n")


class KustTarget:
    def __init__(self, loader: Loader, origin_path: str | None, build_metadata: list[str]) -> None:
        self.loader = loader
        self.origin_path = origin_path  # None unless buildMetadata asks for origins/transformations
        self.file_name = loader.kustomization_file()
        self.where = posixpath.join(loader.root, self.file_name)
        self.k = self._load()
        self.build_metadata = build_metadata

    # -- loading ------------------------------------------------------------------------------
    def _load(self) -> dict[str, Any]:
        raw = self.loader.read(self.file_name)
        try:
            text = raw.decode("utf-8")
            docs = [d for d in load_all(text, timestamps=False) if d is not None]
        except (YAMLInputError, UnicodeDecodeError) as exc:
            raise KustomizeError(f"invalid Kustomization: {self.where}: {exc}") from None
        check_kustomization_types(text)
        if len(docs) > 1:
            raise KustomizeError(f"invalid Kustomization: {self.where}: more than one YAML document")
        k = docs[0] if docs else {}
        if not isinstance(k, dict):
            raise KustomizeError(f"invalid Kustomization: {self.where}: not a mapping")
        for key in k:
            if key in UNSUPPORTED_FIELDS:
                raise KustomizeError(
                    f"{self.where}: field '{key}' is not supported: {UNSUPPORTED_FIELDS[key]}"
                )
            if key not in _SUPPORTED_FIELDS:
                raise KustomizeError(f'invalid Kustomization: {self.where}: json: unknown field "{key}"')
        kind = k.get("kind") or KUSTOMIZATION_KIND
        if kind not in (KUSTOMIZATION_KIND, COMPONENT_KIND):
            raise KustomizeError(f"{self.where}: kind must be Kustomization or Component, not {kind!r}")
        return k

    @property
    def kind(self) -> str:
        return str(self.k.get("kind") or KUSTOMIZATION_KIND)

    def list_field(self, key: str) -> list[Any]:
        value = self.k.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise KustomizeError(f"{self.where}: {key} must be a list")
        return value

    def _strings(self, key: str) -> list[str]:
        return [as_text(v) for v in self.list_field(key)]

    def _map(self, key: str) -> dict[str, str]:
        value = self.k.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise KustomizeError(f"{self.where}: {key} must be a mapping")
        return {str(k): as_text(v) for k, v in value.items()}

    def _tracks_origin(self) -> bool:
        return self.origin_path is not None and "originAnnotations" in self.build_metadata

    def _tracks_transformations(self) -> bool:
        return self.origin_path is not None and "transformerAnnotations" in self.build_metadata

    def _configured_in(self) -> str:
        return posixpath.join(self.origin_path or "", self.file_name)

    # -- accumulation -------------------------------------------------------------------------
    def accumulate(self, ra: Accumulator | None = None) -> Accumulator:
        if ra is None:
            ra = Accumulator(config=TransformerConfig())
        try:
            self._accumulate_resources(ra, [*self._strings("bases"), *self._strings("resources")])
        except KustomizeError as exc:
            raise KustomizeError(f"accumulating resources: {exc}") from None
        config = default_config()
        for path in self._strings("configurations"):
            data = self._load_yaml_docs(path)
            for doc in data:
                config = config.merge(TransformerConfig.parse(doc, path))
        for path in self._strings("crds"):
            config = config.merge(config_from_openapi(self._read_text(path), path))
        ra.config = ra.config.merge(config)
        self._run_generators(ra)
        for path in self._strings("components"):
            try:
                sub_loader = self.loader.new(path)
            except LoaderError as exc:
                if _looks_remote(path):
                    raise KustomizeError(
                        f"{self.where}: remote component '{path}' is not supported (only local directories)"
                    ) from None
                raise KustomizeError(f"accumulating components: loader.New {str(exc)!r}") from None
            ra = self._accumulate_directory(ra, sub_loader, path, component=True)
        self._run_transformers(ra)
        return ra

    def _accumulate_resources(self, ra: Accumulator, paths: list[str]) -> None:
        for path in paths:
            try:
                self._accumulate_file(ra, path)
                continue
            except _FileAttemptError as file_err:
                file_error = file_err
            if file_error.malformed:
                raise KustomizeError(str(file_error)) from None
            try:
                sub_loader = self.loader.new(path)
            except LoaderError as exc:
                if _looks_remote(path):
                    raise KustomizeError(
                        f"{self.where}: remote resource '{path}' is not supported (only local files and directories)"
                    ) from None
                raise KustomizeError(f"accumulation err='{file_error}': {exc}") from None
            try:
                self._accumulate_directory(ra, sub_loader, path, component=False)
            except KustomizeError as exc:
                raise KustomizeError(f"accumulation err='{file_error}': {exc}") from None

    def _accumulate_file(self, ra: Accumulator, path: str) -> None:
        try:
            raw = self.loader.read(path)
        except LoaderError as exc:
            raise _FileAttemptError(f"accumulating resources from '{path}': {exc}") from None
        try:
            resources = parse_resources(raw, path)
        except YAMLInputError as exc:
            raise _FileAttemptError(
                f"accumulating resources from '{path}': MalformedYAMLError: {exc} in File: {path}",
                malformed=True,
            ) from None
        except KustomizeError as exc:
            raise _FileAttemptError(f"accumulating resources from '{path}': {exc}") from None
        if self.origin_path is not None:
            origin = _origin_text(posixpath.normpath(posixpath.join(self.origin_path, path)))
            for r in resources:
                r.origin = origin
        try:
            ra.append(resources)
        except KustomizeError as exc:
            raise _FileAttemptError(f"merging resources from '{path}': {exc}") from None

    def _accumulate_directory(
        self, ra: Accumulator, loader: Loader, path: str, *, component: bool
    ) -> Accumulator:
        origin = None
        if self.origin_path is not None:
            origin = posixpath.normpath(posixpath.join(self.origin_path, path))
        try:
            sub = KustTarget(loader, origin, self.build_metadata)
        except KustomizeError as exc:
            raise KustomizeError(f"couldn't make target for path '{loader.root}': {exc}") from None
        if component and sub.kind != COMPONENT_KIND:
            raise KustomizeError(
                f"expected kind '{COMPONENT_KIND}' for path '{loader.root}' but got '{sub.kind}'"
            )
        if not component and sub.kind == COMPONENT_KIND:
            raise KustomizeError(f"expected kind != '{COMPONENT_KIND}' for path '{loader.root}'")
        try:
            if component:
                sub_ra = sub.accumulate(ra)
                result = Accumulator(config=TransformerConfig())
            else:
                sub_ra = sub.accumulate()
                result = ra
        except KustomizeError as exc:
            raise KustomizeError(f"recursed accumulation of path '{loader.root}': {exc}") from None
        try:
            result.append(sub_ra.resources)
        except KustomizeError as exc:
            raise KustomizeError(f"recursed merging from path '{loader.root}': {exc}") from None
        result.config = result.config.merge(sub_ra.config)
        return result

    def _read_text(self, path: str) -> str:
        try:
            return self.loader.read(path).decode("utf-8")
        except UnicodeDecodeError:
            raise KustomizeError(f"{path}: not valid UTF-8") from None

    def _load_yaml_docs(self, path: str) -> list[Any]:
        try:
            return [d for d in load_all(self._read_text(path)) if d is not None]
        except YAMLInputError as exc:
            raise KustomizeError(f"MalformedYAMLError: {exc} in File: {path}") from None

    # -- generators ---------------------------------------------------------------------------
    def _run_generators(self, ra: Accumulator) -> None:
        global_options = GeneratorOptions.parse(
            self.k.get("generatorOptions"), f"{self.where}: generatorOptions"
        )
        for key, kind in (("configMapGenerator", "ConfigMap"), ("secretGenerator", "Secret")):
            for entry in self.list_field(key):
                res = make_generated(kind, entry, f"{self.where}: {key}", self.loader.read, global_options)
                if self.origin_path is not None:
                    res.origin = _configured_text(self._configured_in(), f"{kind}Generator")
                try:
                    ra.absorb(res)
                except KustomizeError as exc:
                    raise KustomizeError(
                        f"merging from generator {key} {entry.get('name')!r}: {exc}"
                    ) from None

    # -- transformers -------------------------------------------------------------------------
    def _run_transformers(self, ra: Accumulator) -> None:
        config = ra.config
        steps: list[tuple[str, Callable[[list[Resource]], None]]] = []
        psm = self.list_field("patchesStrategicMerge")
        if psm:
            patches = [p for entry in psm for p in self._strategic_patches_from_entry(entry)]
            steps.append(("PatchStrategicMergeTransformer", lambda rs: _apply_psm(rs, patches)))
        for index, entry in enumerate(self.list_field("patches")):
            steps.append(("PatchTransformer", self._patch_step(entry, f"{self.where}: patches[{index}]")))
        namespace = self.k.get("namespace")
        if namespace:
            ns = as_text(namespace)
            specs = config.specs["namespace"]
            steps.append(("NamespaceTransformer", lambda rs: transform_namespace(rs, ns, specs)))
        prefix = as_text(self.k.get("namePrefix"))
        if prefix:
            pspecs = config.specs["namePrefix"]
            steps.append(
                ("PrefixTransformer", lambda rs: transform_name_affix(rs, prefix, pspecs, suffix=False))
            )
        suffix = as_text(self.k.get("nameSuffix"))
        if suffix:
            sspecs = config.specs["nameSuffix"]
            steps.append(
                ("SuffixTransformer", lambda rs: transform_name_affix(rs, suffix, sspecs, suffix=True))
            )
        for index, entry in enumerate(self.list_field("labels")):
            steps.append(("LabelTransformer", self._labels_step(entry, config, index)))
        common_labels = self._map("commonLabels")
        if common_labels or self.list_field("labels"):
            # kustomize configures a commonLabels LabelTransformer whenever either field is set
            lspecs = config.specs["commonLabels"]
            steps.append(("LabelTransformer", lambda rs: transform_map_entries(rs, common_labels, lspecs)))
        common_annotations = self._map("commonAnnotations")
        if common_annotations:
            aspecs = config.specs["commonAnnotations"]
            steps.append(
                ("AnnotationsTransformer", lambda rs: transform_map_entries(rs, common_annotations, aspecs))
            )
        for index, entry in enumerate(self.list_field("patchesJson6902")):
            steps.append(("PatchJson6902Transformer", self._json6902_step(entry, index)))
        for index, entry in enumerate(self.list_field("replicas")):
            steps.append(("ReplicaCountTransformer", self._replicas_step(entry, config, index)))
        updates = []
        for index, entry in enumerate(self.list_field("images")):
            if not isinstance(entry, dict):
                raise KustomizeError(f"{self.where}: images[{index}] must be a mapping")
            updates.append(ImageUpdate(entry, f"{self.where}: images[{index}]"))
        if updates:
            # The image transformers run last and only touch image fields: one pass applies
            # them all in order; the others are recorded for transformer annotations only.
            ispecs = config.specs["images"]
            steps.append(("ImageTagTransformer", lambda rs: transform_images(rs, updates, ispecs)))
            steps.extend(("ImageTagTransformer", _no_op) for _ in updates[1:])
        replacements = self._replacements()
        if replacements:
            where = f"{self.where}: replacements"
            steps.append(("ReplacementTransformer", lambda rs: apply_replacements(rs, replacements, where)))
        record = self._tracks_transformations()
        track_origin = self._tracks_origin()
        for name, step in steps:
            entry_text = _configured_text(self._configured_in(), name) if record or track_origin else ""
            if record:
                # recorded before the transformer runs: a patch replacing the annotations
                # erases its own entry too, as in kustomize
                for r in ra.resources:
                    r.transformations.append(entry_text)
            step(ra.resources)
            ra.resources = [r for r in ra.resources if r.obj]
            if track_origin:
                for r in ra.resources:
                    if r.origin is None:
                        # an object that lost its origin annotation is attributed to the transformer
                        r.origin = entry_text

    def _replacements(self) -> list[dict[str, Any]]:
        """Inline replacements and those loaded from ``path`` files, in order."""
        result: list[dict[str, Any]] = []
        for index, entry in enumerate(self.list_field("replacements")):
            if not isinstance(entry, dict):
                raise KustomizeError(f"{self.where}: replacements[{index}] must be a mapping")
            path = as_text(entry.get("path"))
            if not path:
                result.append(entry)
                continue
            for doc in self._load_yaml_docs(path):
                items = doc if isinstance(doc, list) else [doc]
                for item in items:
                    if not isinstance(item, dict):
                        raise KustomizeError(f"{path}: a replacement must be a mapping")
                    result.append(item)
        return result

    def _labels_step(
        self, entry: Any, config: TransformerConfig, index: int
    ) -> Callable[[list[Resource]], None]:
        where = f"{self.where}: labels[{index}]"
        if not isinstance(entry, dict):
            raise KustomizeError(f"{where} must be a mapping")
        unknown = set(entry) - {"pairs", "includeSelectors", "includeTemplates", "fields"}
        if unknown:
            raise KustomizeError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        pairs = entry.get("pairs") or {}
        if not isinstance(pairs, dict):
            raise KustomizeError(f"{where}: pairs must be a mapping")
        labels = {str(k): as_text(v) for k, v in pairs.items()}
        specs = [parse_fieldspec(f, where) for f in entry.get("fields") or []]
        if entry.get("includeSelectors"):
            specs = merge_specs(specs, config.specs["commonLabels"])
        else:
            specs = merge_specs(specs, [FieldSpec(Gvk(), "metadata/labels", True)])
            if entry.get("includeTemplates"):
                specs = merge_specs(specs, config.specs["templateLabels"])
        return lambda rs: transform_map_entries(rs, labels, specs)

    def _replicas_step(
        self, entry: Any, config: TransformerConfig, index: int
    ) -> Callable[[list[Resource]], None]:
        where = f"{self.where}: replicas[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise KustomizeError(f"{where} needs a name and a count")
        name = entry["name"]
        count = entry.get("count", 0)
        if not isinstance(count, int) or isinstance(count, bool):
            raise KustomizeError(f"{where}: count must be an integer")
        specs = config.specs["replicas"]
        return lambda rs: transform_replicas(rs, name, count, specs)

    # -- patches ------------------------------------------------------------------------------
    def _strategic_patches_from_entry(self, entry: Any) -> list[dict[str, Any]]:
        """One patchesStrategicMerge entry: inline YAML objects, else a file path."""
        text = as_text(entry)
        try:
            docs = [d for d in load_all(text) if d is not None]
        except YAMLInputError:
            docs = []
        if docs and all(isinstance(d, dict) for d in docs):
            return docs
        docs = self._load_yaml_docs(text)
        for d in docs:
            if not isinstance(d, dict):
                raise KustomizeError(f"{self.where}: patchesStrategicMerge {text}: not a Kubernetes object")
        return docs

    def _patch_step(self, entry: Any, where: str) -> Callable[[list[Resource]], None]:
        if not isinstance(entry, dict):
            raise KustomizeError(f"{where} must be a mapping")
        unknown = set(entry) - {"path", "patch", "target", "options"}
        if unknown:
            raise KustomizeError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        text = as_text(entry.get("patch")).strip()
        path = as_text(entry.get("path"))
        if not text and not path:
            raise KustomizeError(f"{where}: must specify one of patch and path")
        if text and path:
            raise KustomizeError(f"{where}: patch and path can't be set at the same time")
        if path:
            text = self._read_text(path)
        try:
            docs = [d for d in load_all(text) if d is not None]
        except YAMLInputError as exc:
            raise KustomizeError(f"{where}: unable to parse SM or JSON patch: {exc}") from None
        target = Selector.parse(entry["target"], where) if entry.get("target") is not None else None
        options = entry.get("options") or {}
        allow_name = bool(options.get("allowNameChange", False))
        allow_kind = bool(options.get("allowKindChange", False))
        if len(docs) == 1 and isinstance(docs[0], list):
            ops = load_all_v2(text)[0]  # kustomize decodes JSON 6902 with YAML 1.1 (y/yes/on are booleans)
            if target is None:
                raise KustomizeError(f"{where}: must specify a target for JSON patch {text!r}")
            track = (self._tracks_origin(), self._tracks_transformations())
            return lambda rs: _apply_json6902(rs, target, ops, where, store_id=True, track=track)
        if not docs or not all(isinstance(d, dict) for d in docs):
            raise KustomizeError(f"{where}: unable to parse SM or JSON patch from {text!r}")
        patches = docs

        def run(rs: list[Resource]) -> None:
            for patch in patches:
                if target is None:
                    patch_id = Resource(patch).cur_id()
                    try:
                        found = get_by_id(rs, patch_id)
                    except KustomizeError as exc:
                        raise KustomizeError(
                            f'no resource matches strategic merge patch "{patch_id}": {exc}'
                        ) from None
                    _apply_smp(found, patch, allow_name, allow_kind)
                    continue
                for found in select(rs, target, where):
                    _apply_smp(found, patch, allow_name, allow_kind)

        return run

    def _json6902_step(self, entry: Any, index: int) -> Callable[[list[Resource]], None]:
        where = f"{self.where}: patchesJson6902[{index}]"
        if not isinstance(entry, dict):
            raise KustomizeError(f"{where} must be a mapping")
        raw_target = entry.get("target")
        if raw_target is None:
            raise KustomizeError(f"{where}: must specify a target")
        target = Selector.parse(raw_target, where)
        text = as_text(entry.get("patch"))
        path = as_text(entry.get("path"))
        if path:
            text = self._read_text(path)
        if not text.strip():
            raise KustomizeError(f"{where}: empty json patch operations")
        try:
            docs = [d for d in load_all(text) if d is not None]
        except YAMLInputError as exc:
            raise KustomizeError(f"{where}: {exc}") from None
        if not docs or not isinstance(docs[0], list):
            raise KustomizeError(f"{where}: a JSON 6902 patch must be a list of operations")
        ops = load_all_v2(text)[0]  # decoded with YAML 1.1 rules, as kustomize does
        track = (self._tracks_origin(), self._tracks_transformations())
        return lambda rs: _apply_json6902(rs, target, ops, where, store_id=False, track=track)


def _looks_remote(path: str) -> bool:
    """A git/HTTP/OCI reference rather than a local path (kustomize would fetch it)."""
    return path.startswith(_REMOTE_PREFIXES) or "://" in path


def _no_op(resources: list[Resource]) -> None:
    """A transformer whose work was done by the previous one of its kind."""


class _FileAttemptError(KustomizeError):
    def __init__(self, message: str, *, malformed: bool = False) -> None:
        super().__init__(message)
        self.malformed = malformed


def parse_resources(raw: bytes, where: str) -> list[Resource]:
    """The objects of one manifest file; List kinds are flattened, empty documents dropped."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise KustomizeError(f"{where}: not valid UTF-8") from None
    result: list[Resource] = []
    for doc in load_all(text):
        if doc is None:
            continue
        _add_object(doc, result, where)
    return result


def _add_object(doc: Any, out: list[Resource], where: str) -> None:
    if not isinstance(doc, dict):
        raise KustomizeError(
            f"missing Resource metadata (expected a Kubernetes object, got {type(doc).__name__})"
        )
    if not doc:
        return
    kind = doc.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and "items" in doc:
        items = doc.get("items") or []
        if not isinstance(items, list):
            raise KustomizeError(f"{where}: items of {kind} must be a list")
        for item in items:
            _add_object(item, out, where)
        return
    if not kind:
        raise KustomizeError(f"missing kind in object {_short(doc)}")
    bad_key = _non_string_key(doc)
    if bad_key is not None:
        raise KustomizeError(
            f"{where}: map key {bad_key!r} is not a string (quote it): "
            "json: unsupported type: map[interface {}]interface {}"
        )
    meta = doc.get("metadata")
    if not isinstance(meta, dict) or not meta.get("name"):
        raise KustomizeError(f"missing metadata.name in object {_short(doc)}")
    out.append(Resource(doc))


def _non_string_key(node: Any) -> Any:
    """The first mapping key that is not a string (kustomize cannot encode those as JSON)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if not isinstance(key, str):
                return key
            found = _non_string_key(value)
            if found is not None:
                return found
    elif isinstance(node, list):
        for value in node:
            found = _non_string_key(value)
            if found is not None:
                return found
    return None


def _short(doc: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}" for k in list(doc)[:4]) + "}"


def _schema(obj: dict[str, Any]) -> FieldSchema:
    schema = schema_for(str(obj.get("apiVersion") or ""), str(obj.get("kind") or ""))
    return schema if schema is not None else generic_object_schema()


def _apply_smp(r: Resource, patch: dict[str, Any], allow_name: bool, allow_kind: bool) -> None:
    name, namespace, kind, api_version = r.name, r.namespace, r.kind, r.obj.get("apiVersion")
    if allow_name or allow_kind:
        r.store_previous_id()
    if patch.get("$patch") == "delete":
        r.obj = {}
        return
    if r.has_untyped:  # kyaml's merge gives untyped scalars a string tag
        untyped_to_strings(r.obj)
        r.has_untyped = False
    before = r.snapshot_links() if r.links else []
    try:
        r.obj = apply_strategic_merge(r.obj, patch, _schema(r.obj))
    except PatchError as exc:
        raise KustomizeError(f"applying strategic merge patch to {r.cur_id()}: {exc}") from None
    if not r.obj:
        return
    if before:
        r.propagate_link_changes(before)
    if not allow_kind:
        r.obj["apiVersion"] = api_version
        r.obj["kind"] = kind
    if not allow_name:
        r.name = name
    r.namespace = namespace


def _apply_psm(resources: list[Resource], patches: list[dict[str, Any]]) -> None:
    for patch in patches:
        patch_id = Resource(patch).cur_id()
        found = get_by_id(resources, patch_id)
        _apply_smp(found, patch, False, False)


def _apply_json6902(
    resources: list[Resource],
    target: Selector,
    ops: list[Any],
    where: str,
    *,
    store_id: bool,
    track: tuple[bool, bool],
) -> None:
    """``track``: whether origin and transformation annotations are being recorded."""
    with_origin, with_transformations = track
    for r in select(resources, target, where):
        if store_id:
            r.store_previous_id()
        r.links.clear()  # kustomize applies JSON patches to a JSON copy: shared nodes are gone
        if r.has_untyped:  # ... and through JSON every untyped scalar gets its type
            resolve_untyped(r.obj)
            r.has_untyped = False
        # kustomize's objects carry their bookkeeping as annotations while the patch runs, so
        # e.g. "add /metadata/annotations/x" works on an object without annotations of its own.
        internal = r.internal_annotations(with_origin=with_origin, with_transformations=with_transformations)
        if internal:
            r.metadata().setdefault("annotations", {})
            if isinstance(r.metadata()["annotations"], dict):
                r.metadata()["annotations"].update(internal)
        try:
            r.obj = json_patch(r.obj, ops)
        except PatchError as exc:
            raise KustomizeError(f"{where}: applying JSON patch to {r.cur_id()}: {exc}") from None
        finally:
            if internal:
                r.strip_internal_annotations(
                    with_origin=with_origin, with_transformations=with_transformations
                )
