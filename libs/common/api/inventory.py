"""Flux's inventory ids (`status.inventory.entries[].id`): `<namespace>_<name>_<group>_<kind>`.

Written and read as cli-utils' ObjMetadata does, so Sluice's inventories and Flux's are the same
text: the namespace and group may be empty, and a `:` in a name (RBAC's `system:viewer`) is
written `__`. The apply service writes them; `sluice tree` and `sluice diff` read them.
"""

from __future__ import annotations

from typing import NamedTuple


class InventoryId(NamedTuple):
    namespace: str
    name: str
    group: str
    kind: str

    def __str__(self) -> str:
        return f"{self.namespace}_{self.name.replace(':', '__')}_{self.group}_{self.kind}"

    @classmethod
    def parse(cls, text: str) -> InventoryId:
        """The object an id names; ValueError when `text` is not an inventory id. Kubernetes
        names, groups and kinds never contain `_`, except for the `__` that stands for `:`."""
        namespace, sep, rest = text.partition("_")
        parts = rest.rsplit("_", 2)
        if not sep or len(parts) != 3 or not parts[0] or not parts[2]:
            raise ValueError(f"invalid inventory id {text!r}")
        name, group, kind = parts
        if "_" in name.replace("__", ""):
            raise ValueError(f"invalid inventory id {text!r}")
        return cls(namespace, name.replace("__", ":"), group, kind)
