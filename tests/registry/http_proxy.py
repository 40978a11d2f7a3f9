"""A small real HTTP forward proxy on loopback: absolute-form requests for http:// targets, CONNECT
tunnels for https:// ones, Basic `Proxy-Authorization` required. One request per connection."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp

_HOP_BY_HOP = {
    "connection",
    "proxy-authorization",
    "proxy-connection",
    "keep-alive",
    "host",
    "transfer-encoding",
}


@dataclass
class HttpProxy:
    url: str = ""
    username: str = "proxy-user"
    password: str = "proxy-pass"
    seen: list[str] = field(default_factory=list)
    """`METHOD absolute-url` of every request forwarded."""
    refused: int = 0


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


@contextlib.asynccontextmanager
async def http_proxy() -> AsyncIterator[HttpProxy]:
    state = HttpProxy()
    expected = "Basic " + base64.b64encode(f"{state.username}:{state.password}".encode()).decode()
    session = aiohttp.ClientSession(auto_decompress=False)

    async def reply(
        writer: asyncio.StreamWriter, status: int, reason: str, headers: dict[str, str], body: bytes
    ) -> None:
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines += [
            f"{k}: {v}" for k, v in headers.items() if k.lower() not in _HOP_BY_HOP | {"content-length"}
        ]
        lines += [f"Content-Length: {headers.get('Content-Length', len(body))}", "Connection: close", "", ""]
        writer.write("\r\n".join(lines).encode() + body)
        await writer.drain()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, target, _ = request_line.split(" ", 2)
            headers = dict(line.split(": ", 1) for line in header_lines if ": " in line)
            if headers.get("Proxy-Authorization") != expected:
                state.refused += 1
                await reply(
                    writer,
                    407,
                    "Proxy Authentication Required",
                    {"Proxy-Authenticate": 'Basic realm="p"'},
                    b"",
                )
                return
            if method == "CONNECT":  # a tunnel for https:// targets
                state.seen.append(f"CONNECT {target}")
                host, _, port = target.rpartition(":")
                up_reader, up_writer = await asyncio.open_connection(host, int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
                return
            body = await reader.readexactly(int(headers.get("Content-Length", "0")))
            state.seen.append(f"{method} {target}")
            forward = {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}
            async with session.request(
                method, target, headers=forward, data=body or None, allow_redirects=False
            ) as resp:
                data = await resp.read()
                out = {k: v for k, v in resp.headers.items()}
                if method != "HEAD":
                    out["Content-Length"] = str(len(data))
                await reply(writer, resp.status, resp.reason or "", out, data if method != "HEAD" else b"")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()
        await session.close()
