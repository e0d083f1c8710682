"""A reverse proxy on 127.0.0.1 that injects faults: latency, error answers and hangs.

The emulator and the KFP stand-in answer every request at once and never fail; real API servers
do both. Put this proxy in front of either, and tell it which requests to hurt: by method, path
pattern and (optionally) a piece of the body, for how many requests. Streaming answers (watches)
are passed through chunk by chunk.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from dataclasses import dataclass

import aiohttp
import aiohttp.web

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class Fault:
    """What to do to the next ``times`` matching requests."""

    method: str
    path: re.Pattern[str]
    times: int
    status: int | None = None  # answer this instead of forwarding
    delay: float = 0.0  # seconds to wait before forwarding (or answering)
    hang: bool = False  # never answer
    body_contains: str | None = None
    hits: int = 0

    def matches(self, method: str, path: str, body: bytes) -> bool:
        return (
            self.hits < self.times
            and method == self.method
            and self.path.search(path) is not None
            and (self.body_contains is None or self.body_contains.encode() in body)
        )


def kubernetes_status(code: int) -> bytes:
    """The body the API server sends with an error code."""
    reason = {409: "Conflict", 500: "InternalError", 503: "ServiceUnavailable"}.get(code, "Error")
    return json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "reason": reason,
            "code": code,
            "message": f"injected by the fault proxy: {reason}",
        }
    ).encode()


class FaultProxy:
    """``with FaultProxy(upstream) as proxy: proxy.inject(...)``; clients use ``proxy.url``."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.url = ""
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)

    def inject(
        self,
        method: str,
        path: str,
        *,
        times: int = 1,
        status: int | None = None,
        delay: float = 0.0,
        hang: bool = False,
        body_contains: str | None = None,
    ) -> Fault:
        fault = Fault(method, re.compile(path), times, status, delay, hang, body_contains)
        with self._lock:
            self.faults.append(fault)
        return fault

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        if not self._ready.wait(timeout=30) or not self.url:
            raise RuntimeError("the fault proxy did not start")
        return self

    def __exit__(self, *_: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def _take(self, method: str, path: str, body: bytes) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path, body):
                    fault.hits += 1
                    return fault
        return None

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
        async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
            app = aiohttp.web.Application()

            async def forward(request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
                return await self._forward(request, session)

            app.router.add_route("*", "/{tail:.*}", forward)
            runner = aiohttp.web.AppRunner(app, access_log=None, shutdown_timeout=1)
            await runner.setup()
            site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            self.url = f"http://127.0.0.1:{port}"
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                await runner.cleanup()

    async def _forward(
        self, request: aiohttp.web.Request, session: aiohttp.ClientSession
    ) -> aiohttp.web.StreamResponse:
        body = await request.read()
        fault = self._take(request.method, request.path, body)
        if fault is not None:
            if fault.hang:
                await asyncio.sleep(3600)
            await asyncio.sleep(fault.delay)
            if fault.status is not None:
                return aiohttp.web.Response(
                    status=fault.status,
                    body=kubernetes_status(fault.status),
                    content_type="application/json",
                )
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        async with session.request(
            request.method, self.upstream + request.rel_url.path_qs, headers=headers, data=body
        ) as upstream:
            response = aiohttp.web.StreamResponse(status=upstream.status)
            for key, value in upstream.headers.items():
                if key.lower() not in HOP_HEADERS:
                    response.headers[key] = value
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except (ConnectionResetError, aiohttp.ClientError):
                pass  # the client went away mid-stream (a watch it gave up, a killed replica)
            return response
