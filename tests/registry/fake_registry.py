"""A small real registry for what docker-registry cannot show: a bearer-token challenge (token
service on `/token`, Basic-authenticated as USER/PASSWORD), `Link` pagination, `"tags": null` and
`429 Too Many Requests` with `Retry-After`."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class FakeRegistry:
    url: str = ""
    tags: list[str] | None = field(default_factory=list)
    page_size: int = 2
    limited: int = 0
    retry_after: str = "7"
    hits: list[str] = field(default_factory=list)
    token_requests: list[str] = field(default_factory=list)

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")


USER, PASSWORD, TOKEN = "robot", "pa55", "tok-123"


@contextlib.asynccontextmanager
async def fake_registry() -> AsyncIterator[FakeRegistry]:
    """Serve a FakeRegistry on a free loopback port until the block ends."""
    state = FakeRegistry()

    async def token(request: web.Request) -> web.Response:
        state.token_requests.append(request.query.get("scope", ""))
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"errors": [{"code": "UNAUTHORIZED"}]}, status=401)
        return web.json_response({"token": TOKEN, "expires_in": 300})

    async def tags(request: web.Request) -> web.Response:
        state.hits.append(request.path_qs)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            challenge = (
                f'Bearer realm="{state.url}/token",service="fake",'
                f'scope="repository:{request.match_info["repo"]}:pull"'
            )
            return web.json_response({"errors": []}, status=401, headers={"WWW-Authenticate": challenge})
        if state.limited > 0:
            state.limited -= 1
            return web.json_response(
                {"errors": [{"code": "TOOMANYREQUESTS"}]},
                status=429,
                headers={"Retry-After": state.retry_after},
            )
        if state.tags is None:
            return web.json_response({"name": request.match_info["repo"], "tags": None})
        last = request.query.get("last")
        start = state.tags.index(last) + 1 if last else 0
        page = state.tags[start : start + state.page_size]
        headers = {}
        if start + state.page_size < len(state.tags):
            headers["Link"] = (
                f'</v2/{request.match_info["repo"]}/tags/list?n={state.page_size}&last={page[-1]}>; rel="next"'
            )
        return web.json_response({"name": request.match_info["repo"], "tags": page}, headers=headers)

    app = web.Application()
    app.router.add_get("/token", token)
    app.router.add_get("/v2/{repo:.+}/tags/list", tags)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield state
    finally:
        await runner.cleanup()
