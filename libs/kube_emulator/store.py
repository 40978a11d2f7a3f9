"""Object storage with O(1) get/put by key, per-namespace indexes, event history and watchers.

All mutation happens on one asyncio event loop; watchers receive every event in commit order.
Stored objects are never mutated in place: a write replaces the dict, so events may share it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .selectors import Selector

JSON = dict[str, Any]
TypeKey = tuple[str, str]  # (group, resource)
ObjKey = tuple[TypeKey, str, str]  # (type, namespace, name)


@dataclass
class Event:
    type: str  # ADDED | MODIFIED | DELETED
    rv: int
    key: TypeKey
    namespace: str
    obj: JSON
    old: JSON | None = None


@dataclass(eq=False)
class Watcher:
    key: TypeKey
    namespace: str | None
    selector: Selector
    queue: asyncio.Queue[tuple[str, JSON] | None] = field(default_factory=asyncio.Queue)

    def offer(self, event: Event) -> None:
        if self.namespace is not None and event.namespace != self.namespace:
            return
        if self.selector.empty:
            self.queue.put_nowait((event.type, event.obj))
            return
        now = self.selector.matches(event.obj)
        if event.type == "ADDED":
            if now:
                self.queue.put_nowait(("ADDED", event.obj))
        elif event.type == "DELETED":
            if now:
                self.queue.put_nowait(("DELETED", event.obj))
        else:
            before = event.old is not None and self.selector.matches(event.old)
            if before and now:
                self.queue.put_nowait(("MODIFIED", event.obj))
            elif now:
                self.queue.put_nowait(("ADDED", event.obj))
            elif before:
                self.queue.put_nowait(("DELETED", event.obj))

    def close(self) -> None:
        self.queue.put_nowait(None)


class Store:
    def __init__(self, history_size: int = 10_000) -> None:
        self.rv = 0
        self.objects: dict[TypeKey, dict[str, dict[str, JSON]]] = {}
        self.history: deque[Event] = deque()
        self.history_size = history_size
        self.history_floor = 0
        self.watchers: dict[TypeKey, set[Watcher]] = {}
        self.listeners: list[Callable[[Event], None]] = []
        self.uids: dict[str, ObjKey] = {}
        self.dependents: dict[str, set[ObjKey]] = {}

    # -- reads ---------------------------------------------------------------------------------
    def get(self, key: TypeKey, namespace: str, name: str) -> JSON | None:
        return self.objects.get(key, {}).get(namespace, {}).get(name)

    def iter(self, key: TypeKey, namespace: str | None) -> Iterator[JSON]:
        """Objects of a type, sorted by (namespace, name) like etcd's key order."""
        spaces = self.objects.get(key, {})
        if namespace is not None:
            bucket = spaces.get(namespace, {})
            for name in sorted(bucket):
                yield bucket[name]
            return
        for ns in sorted(spaces):
            bucket = spaces[ns]
            for name in sorted(bucket):
                yield bucket[name]

    def count(self, key: TypeKey, namespace: str | None = None) -> int:
        spaces = self.objects.get(key, {})
        if namespace is not None:
            return len(spaces.get(namespace, {}))
        return sum(len(b) for b in spaces.values())

    def namespaced_keys(self, namespace: str) -> list[TypeKey]:
        return [k for k, spaces in self.objects.items() if spaces.get(namespace)]

    def lookup_uid(self, uid: str) -> JSON | None:
        ref = self.uids.get(uid)
        if ref is None:
            return None
        return self.get(*ref)

    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    # -- writes --------------------------------------------------------------------------------
    def put(self, key: TypeKey, obj: JSON, event_type: str, old: JSON | None) -> None:
        meta = obj["metadata"]
        ns = meta.get("namespace", "")
        name = meta["name"]
        self.objects.setdefault(key, {}).setdefault(ns, {})[name] = obj
        if old is not None:
            self._unindex(key, old)
        self._index(key, obj)
        self._emit(Event(event_type, int(meta["resourceVersion"]), key, ns, obj, old))

    def remove(self, key: TypeKey, obj: JSON) -> None:
        """Remove a stored object; `obj` is the final state (already carrying its deletion rv)."""
        meta = obj["metadata"]
        ns = meta.get("namespace", "")
        bucket = self.objects.get(key, {}).get(ns, {})
        old = bucket.pop(meta["name"], None)
        if not bucket:
            self.objects.get(key, {}).pop(ns, None)
        if old is not None:
            self._unindex(key, old)
        self._emit(Event("DELETED", int(meta["resourceVersion"]), key, ns, obj, old))

    def drop_type(self, key: TypeKey) -> None:
        self.objects.pop(key, None)
        for w in self.watchers.pop(key, set()):
            w.close()

    def load(self, key: TypeKey, obj: JSON) -> None:
        """Insert without an event (state restore)."""
        meta = obj["metadata"]
        self.objects.setdefault(key, {}).setdefault(meta.get("namespace", ""), {})[meta["name"]] = obj
        self._index(key, obj)

    def _index(self, key: TypeKey, obj: JSON) -> None:
        meta = obj["metadata"]
        ref: ObjKey = (key, meta.get("namespace", ""), meta["name"])
        uid = meta.get("uid")
        if uid:
            self.uids[uid] = ref
        for owner in meta.get("ownerReferences") or []:
            self.dependents.setdefault(owner.get("uid", ""), set()).add(ref)

    def _unindex(self, key: TypeKey, obj: JSON) -> None:
        meta = obj["metadata"]
        ref: ObjKey = (key, meta.get("namespace", ""), meta["name"])
        uid = meta.get("uid")
        if uid and self.uids.get(uid) == ref:
            del self.uids[uid]
        for owner in meta.get("ownerReferences") or []:
            deps = self.dependents.get(owner.get("uid", ""))
            if deps is not None:
                deps.discard(ref)
                if not deps:
                    del self.dependents[owner.get("uid", "")]

    def _emit(self, event: Event) -> None:
        self.history.append(event)
        while len(self.history) > self.history_size:
            dropped = self.history.popleft()
            self.history_floor = dropped.rv
        for watcher in list(self.watchers.get(event.key, ())):
            watcher.offer(event)
        for listener in list(self.listeners):
            listener(event)

    # -- watch ---------------------------------------------------------------------------------
    def too_old(self, rv: int) -> bool:
        return rv < self.history_floor

    def add_watcher(self, watcher: Watcher, since: int | None) -> None:
        """Register a watcher; replays history after `since`, or current state as ADDED when None."""
        if since is None:
            for obj in self.iter(watcher.key, watcher.namespace):
                if watcher.selector.matches(obj):
                    watcher.queue.put_nowait(("ADDED", obj))
        else:
            for event in self.history:
                if event.rv > since and event.key == watcher.key:
                    watcher.offer(event)
        self.watchers.setdefault(watcher.key, set()).add(watcher)

    def remove_watcher(self, watcher: Watcher) -> None:
        group = self.watchers.get(watcher.key)
        if group is not None:
            group.discard(watcher)
            if not group:
                del self.watchers[watcher.key]

    def close_all_watchers(self) -> None:
        for group in list(self.watchers.values()):
            for w in list(group):
                w.close()
        self.watchers.clear()
