"""configMapGenerator / secretGenerator and kustomize's content hash for name suffixes."""

from __future__ import annotations

import base64
import hashlib
import json
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from libs.kustomize.errors import KustomizeError
from libs.kustomize.resource import Resource, as_text

_CONFIG_MAP_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_ENV_VAR_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_GENERATOR_FIELDS = {
    "name",
    "namespace",
    "behavior",
    "literals",
    "files",
    "envs",
    "env",
    "options",
    "type",
    "kvSources",
}
_OPTION_FIELDS = {"labels", "annotations", "disableNameSuffixHash", "immutable"}


@dataclass(slots=True)
class GeneratorOptions:
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    disable_hash: bool = False
    immutable: bool = False

    @classmethod
    def parse(cls, raw: Any, where: str) -> GeneratorOptions | None:
        if raw is None:
            return None
        if not isinstance(raw, dict):
            raise KustomizeError(f"{where}: options must be a mapping")
        unknown = set(raw) - _OPTION_FIELDS
        if unknown:
            raise KustomizeError(f"{where}: unknown generator option(s) {', '.join(sorted(unknown))}")
        return cls(
            labels=_string_map(raw.get("labels"), f"{where}: labels"),
            annotations=_string_map(raw.get("annotations"), f"{where}: annotations"),
            disable_hash=bool(raw.get("disableNameSuffixHash", False)),
            immutable=bool(raw.get("immutable", False)),
        )

    def merged_with_global(self, global_opts: GeneratorOptions | None) -> GeneratorOptions:
        """types.MergeGlobalOptionsIntoLocal: local keys win, flags are OR-ed."""
        if global_opts is None:
            return self
        labels = dict(self.labels)
        for k, v in global_opts.labels.items():
            labels.setdefault(k, v)
        annotations = dict(self.annotations)
        for k, v in global_opts.annotations.items():
            annotations.setdefault(k, v)
        return GeneratorOptions(
            labels,
            annotations,
            self.disable_hash or global_opts.disable_hash,
            self.immutable or global_opts.immutable,
        )


def _string_map(raw: Any, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise KustomizeError(f"{where} must be a mapping of strings")
    return {str(k): as_text(v) for k, v in raw.items()}


def _string_list(raw: Any, where: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise KustomizeError(f"{where} must be a list")
    return [as_text(v) for v in raw]


def _remove_quotes(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _literal_pair(source: str, where: str) -> tuple[str, str]:
    if source.startswith("=") or "=" not in source:
        raise KustomizeError(f"{where}: invalid literal source {source}, expected key=value")
    key, _, value = source.partition("=")
    return key, _remove_quotes(value)


def _env_pairs(text: str, where: str) -> list[tuple[str, str]]:
    pairs = []
    for number, line in enumerate(text.split("\n")):
        line = line.removesuffix("\r")
        if number == 0:
            line = line.removeprefix("\ufeff")
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        key, eq, value = line.partition("=")
        if not _ENV_VAR_NAME.match(key):
            raise KustomizeError(
                f"{where}: {key!r} is not a valid key name: a valid environment variable name "
                "must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit"
            )
        if not eq:
            raise KustomizeError(
                f"{where}: line {number + 1} has no '=': reading values from the environment is not supported"
            )
        pairs.append((key, value))
    return pairs


def _file_source(source: str, where: str) -> tuple[str, str]:
    count = source.count("=")
    if count == 0:
        return posixpath.basename(source), source
    if count == 1 and source.startswith("="):
        raise KustomizeError(f"{where}: key name for file path {source[1:]} missing")
    if count == 1 and source.endswith("="):
        raise KustomizeError(f"{where}: file path for key name {source[:-1]} missing")
    if count > 1:
        raise KustomizeError(f"{where}: key names or file paths cannot contain '='")
    key, _, path = source.partition("=")
    return key, path


def encode_base64_lines(data: bytes) -> str:
    """kustomize's encodeBase64: base64 split into 70-character lines when longer than that."""
    encoded = base64.b64encode(data).decode("ascii")
    line_len = 70
    if len(encoded) // line_len + 1 <= 1:
        return encoded
    return "".join(encoded[i : i + line_len] + "\n" for i in range(0, len(encoded), line_len))


FileReader = Callable[[str], bytes]


def make_generated(
    kind: str,
    raw: Any,
    where: str,
    read_file: FileReader,
    global_options: GeneratorOptions | None,
) -> Resource:
    """One configMapGenerator (``kind='ConfigMap'``) or secretGenerator entry as a Resource."""
    if not isinstance(raw, dict):
        raise KustomizeError(f"{where}: generator entries must be mappings")
    unknown = set(raw) - _GENERATOR_FIELDS
    if kind == "ConfigMap":
        unknown |= {"type"} & set(raw)
    if unknown:
        raise KustomizeError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise KustomizeError(f"{where}: a generator needs a 'name'")
    where = f"{where} {name!r}"
    behavior = str(raw.get("behavior") or "create")
    if behavior not in ("create", "merge", "replace"):
        raise KustomizeError(f"{where}: behavior must be create, merge or replace, not {behavior!r}")
    pairs: list[tuple[str, str | bytes]] = []
    env_files = _string_list(raw.get("envs"), f"{where}: envs")
    if raw.get("env"):
        env_files.insert(0, str(raw["env"]))
    for path in env_files:
        try:
            content = read_file(path)
        except KustomizeError as exc:
            raise KustomizeError(f"{where}: loading KV pairs: env source {path}: {exc}") from None
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            raise KustomizeError(f"{where}: env file {path} is not valid UTF-8") from None
        pairs.extend(_env_pairs(text, f"{where}: {path}"))
    for literal in _string_list(raw.get("literals"), f"{where}: literals"):
        pairs.append(_literal_pair(literal, where))
    file_sources = _string_list(raw.get("files"), f"{where}: files")
    for source in file_sources:
        key, path = _file_source(source, where)
        try:
            content = read_file(path)
        except KustomizeError as exc:
            raise KustomizeError(
                f"{where}: loading KV pairs: file sources: [{' '.join(file_sources)}]: {exc}"
            ) from None
        pairs.append((key, content))

    data: dict[str, str] = {}
    binary: dict[str, str] = {}
    for key, value in pairs:
        if not _CONFIG_MAP_KEY.match(key):
            raise KustomizeError(
                f"{where}: {key!r} is not a valid key name for a {kind}: a valid config key must "
                "consist of alphanumeric characters, '-', '_' or '.'"
            )
        if key in data or key in binary:
            raise KustomizeError(f"{where}: {kind.lower()} {name} illegally repeats the key `{key}`")
        raw_bytes = value if isinstance(value, bytes) else value.encode("utf-8")
        if kind == "Secret":
            data[key] = encode_base64_lines(raw_bytes)
            continue
        if isinstance(value, str):
            data[key] = value
            continue
        try:
            data[key] = value.decode("utf-8")
        except UnicodeDecodeError:
            binary[key] = encode_base64_lines(value)

    obj: dict[str, Any] = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name}}
    namespace = raw.get("namespace")
    if namespace:
        obj["metadata"]["namespace"] = str(namespace)
    if data or not binary:
        obj["data"] = data
    if binary:
        obj["binaryData"] = binary
    if kind == "Secret":
        obj["type"] = str(raw.get("type") or "Opaque")
    local = GeneratorOptions.parse(raw.get("options"), f"{where}: options")
    options = (local or GeneratorOptions()).merged_with_global(global_options)
    if options.labels:
        obj["metadata"]["labels"] = dict(sorted(options.labels.items()))
    if options.annotations:
        obj["metadata"]["annotations"] = dict(sorted(options.annotations.items()))
    if options.immutable:
        obj["immutable"] = True
    if not data and not binary:
        obj.pop("data", None)
    return Resource(obj, needs_hash=not options.disable_hash, behavior=behavior, generated=True)


# ------------------------------------------------------------------------------------------------
# hash
# ------------------------------------------------------------------------------------------------


def _go_json(value: Any) -> str:
    """encoding/json's Marshal for maps of strings (sorted keys, HTML-safe escaping)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


_HASH_ENCODE = str.maketrans({"0": "g", "1": "h", "3": "k", "a": "m", "e": "t"})


def content_hash(obj: dict[str, Any]) -> str:
    """api/hasher: sha256 of the JSON encoding of kind/name/data(/type), first 10 hex chars encoded.

    kustomize v5 hashes generated objects with an empty name (confirmed against every
    hash kustomize v5.5.0 printed for the conformance corpus), so renames never change it.
    """
    kind = obj.get("kind")
    data = obj.get("data") or {}
    encoded: dict[str, Any]
    if kind == "ConfigMap":
        encoded = {"kind": "ConfigMap", "name": "", "data": data}
        binary = obj.get("binaryData") or {}
        if binary:
            encoded["binaryData"] = binary
    elif kind == "Secret":
        encoded = {"kind": "Secret", "type": obj.get("type", ""), "name": "", "data": data}
    else:
        encoded = obj
    digest = hashlib.sha256(_go_json(encoded).encode("utf-8")).hexdigest()
    return digest[:10].translate(_HASH_ENCODE)
