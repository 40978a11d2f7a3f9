"""The services' Dockerfiles are well formed and build what runs in deploy/k8s: every COPY source
exists (and is not excluded by .dockerignore), stages referenced exist, the image runs as uid
65532 with `python -m services.<name>`, exposes the ports the manifests use, and installs every
third-party distribution the service imports. No Docker engine runs here, so this is checked by
reading the files."""

from __future__ import annotations

import ast
import fnmatch
import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.dockerfiles import Stage, parse, stages
from tests.deploy.manifests import COMPONENTS, ROOT, built, containers, find

pytestmark = pytest.mark.unit

MODULES = {component: component.replace("-", "_") for component in COMPONENTS}
ENTRY_RE = re.compile(r"^services\.(\w+)$")


def dockerfile(component: str) -> list[Stage]:
    return stages(parse((ROOT / "services" / MODULES[component] / "Dockerfile").read_text()))


def dockerignore() -> list[str]:
    path = ROOT / ".dockerignore"
    lines = path.read_text().splitlines() if path.exists() else []
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def ignored(relative: str, patterns: list[str]) -> bool:
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        pattern = pattern.removeprefix("**/")
        if any(
            fnmatch.fnmatch(prefix, pattern) or fnmatch.fnmatch(parts[-1], pattern) for prefix in prefixes
        ):
            return True
    return False


def test_the_parser_reads_continuations_comments_and_stages() -> None:
    text = "# syntax=docker/dockerfile:1\nFROM a AS one\nRUN x \\\n    # note\n    && y\nFROM b\nCOPY --from=one /v /v\n"
    parsed = parse(text)
    assert [(i.keyword, i.args, i.line) for i in parsed] == [
        ("FROM", "a AS one", 2),
        ("RUN", "x && y", 3),
        ("FROM", "b", 6),
        ("COPY", "--from=one /v /v", 7),
    ]
    groups = stages(parsed)
    assert [(s.base, s.name) for s in groups] == [("a", "one"), ("b", None)]
    assert groups[1].instructions[0].flags() == {"from": "one"}
    assert groups[1].instructions[0].operands() == ["/v", "/v"]


@pytest.mark.parametrize("component", COMPONENTS)
def test_copy_sources_exist_in_the_build_context(component: str) -> None:
    patterns = dockerignore()
    names = set()
    for stage in dockerfile(component):
        for instruction in stage.instructions:
            if instruction.keyword not in ("COPY", "ADD"):
                continue
            source_stage = instruction.flags().get("from")
            if source_stage is not None:
                assert source_stage in names, f"COPY --from={source_stage} names no earlier stage"
                continue
            *sources, _dest = instruction.operands()
            for source in sources:
                assert (ROOT / source).exists(), (
                    f"line {instruction.line}: COPY {source}: not in the repository"
                )
                assert not ignored(source.rstrip("/"), patterns), (
                    f"COPY {source} is excluded by .dockerignore"
                )
        if stage.name:
            names.add(stage.name)


@pytest.mark.parametrize("component", COMPONENTS)
def test_the_image_runs_the_service_as_a_non_root_user(component: str) -> None:
    final = dockerfile(component)[-1]
    users = [i.operands()[0] for i in final.instructions if i.keyword == "USER"]
    assert users and users[-1].split(":")[0] == "65532", "the runtime stage must end as uid 65532"
    entry = [i.operands() for i in final.instructions if i.keyword == "ENTRYPOINT"][-1]
    assert entry[:2] == ["python", "-m"]
    match = ENTRY_RE.match(entry[2])
    assert match and match.group(1) == MODULES[component]
    package = ROOT / "services" / match.group(1)
    assert (package / "__init__.py").is_file() and (package / "__main__.py").is_file()
    assert (ROOT / "services" / "__init__.py").is_file()
    copied = {i.operands()[0] for s in dockerfile(component) for i in s.instructions if i.keyword == "COPY"}
    assert {"libs", "services/__init__.py", f"services/{MODULES[component]}", "pyproject.toml"} <= copied


@pytest.mark.parametrize("component", COMPONENTS)
def test_the_dependency_layer_is_cached_on_pyproject_alone(component: str) -> None:
    deps = dockerfile(component)[0]
    copies = [i.operands() for i in deps.instructions if i.keyword == "COPY"]
    assert copies == [["pyproject.toml", "./"]], "the first stage copies only pyproject.toml"
    assert any("pip install -r requirements.txt" in i.args for i in deps.instructions if i.keyword == "RUN")
    assert len(dockerfile(component)) >= 2, "multi-stage: the runtime stage carries no build tools"


@pytest.mark.parametrize("component", COMPONENTS)
def test_exposed_ports_are_the_ports_the_manifests_use(component: str) -> None:
    final = dockerfile(component)[-1]
    exposed = {
        int(p.split("/")[0]) for i in final.instructions if i.keyword == "EXPOSE" for p in i.operands()
    }
    deployment = find(built(f"services/{component}"), "Deployment", f"sluice-{component}")[0]
    declared = {p["containerPort"] for p in containers(deployment)[0]["ports"]}
    assert exposed == declared


def test_git_services_install_git_and_ssh() -> None:
    for component in ("source", "image-update"):
        runs = " ".join(i.args for i in dockerfile(component)[-1].instructions if i.keyword == "RUN")
        assert "git" in runs.split() and "openssh-client" in runs.split()


def _module_file(module: str) -> Path | None:
    base = ROOT / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under `if TYPE_CHECKING:` (imports only type checkers run)."""
    nodes: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        nodes.append(node)
        if _is_type_checking(node):
            assert isinstance(node, ast.If)
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return nodes


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    if path.name == "__init__.py":
        package = package.removesuffix(".__init__")
    else:
        package = package.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


def imported_distributions(module: str) -> tuple[set[str], set[str]]:
    """Starting at `module`, follow imports inside the repository; returns the repository modules
    reached and the third-party top-level names imported on the way."""
    seen: set[str] = set()
    third_party: set[str] = set()
    todo = [module]
    stdlib = set(__import__("sys").stdlib_module_names)
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        path = _module_file(current)
        if path is None:
            continue
        for name in _imports(path):
            top = name.split(".")[0]
            if top in ("libs", "services"):
                if _module_file(name) is not None:
                    todo.append(name)
            elif top and top not in stdlib and top != "__future__":
                third_party.add(top)
    return {m for m in seen if _module_file(m) is not None}, third_party


def _requirement_closure() -> set[str]:
    """pyproject's dependencies and, transitively, what they require on this Python (no extras)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [Requirement(r) for r in project["dependencies"]]
    closure: set[str] = set()
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in closure or (requirement.marker and not requirement.marker.evaluate({"extra": ""})):
            continue
        closure.add(name)
        todo.extend(Requirement(r) for r in importlib.metadata.requires(name) or [])
    return closure


@pytest.mark.parametrize("component", COMPONENTS)
def test_the_image_installs_everything_the_service_imports(component: str) -> None:
    """`pip install -r requirements.txt` (pyproject's dependencies) plus libs/ and this service's
    package must cover every import reachable from `python -m services.<name>`."""
    module = MODULES[component]
    reached, third_party = imported_distributions(f"services.{module}.__main__")
    other_services = {
        m for m in reached if m.startswith("services.") and not m.startswith(f"services.{module}")
    }
    assert other_services <= {"services"}, f"imports another service: {other_services}"
    assert not [m for m in reached if ".tests" in m], "imports test code"
    providers = importlib.metadata.packages_distributions()
    installed = _requirement_closure()
    missing = {
        top: providers.get(top)
        for top in third_party
        if not {canonicalize_name(d) for d in providers.get(top, [])} & installed
    }
    assert missing == {}, f"imported but not in pyproject's dependencies: {missing}"
