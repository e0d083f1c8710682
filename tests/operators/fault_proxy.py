"""A reverse proxy on 127.0.0.1 that injects faults: latency, error answers, hangs and outages.

The emulator and the KFP stand-in answer every request at once and never fail; real API servers
do both. Put this proxy in front of either, and tell it which requests to hurt: by method, path
pattern and (optionally) a piece of the body, for how many requests. Streaming answers (watches)
are passed through chunk by chunk. An outage answers every request 503 and cuts the streams
open when it begins, as an API server that goes away does; a held request waits until the
test releases it, so that a test can act (freeze the client, say) while it is in flight.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from dataclasses import dataclass, field

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
    hold: bool = False  # wait for release() before forwarding
    query_contains: str | None = None
    hits: int = 0
    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        """Let held requests go on to the upstream."""
        self.released.set()

    def matches(self, method: str, path: str, query: str, body: bytes) -> bool:
        return (
            self.hits < self.times
            and method == self.method
            and self.path.search(path) is not None
            and (self.body_contains is None or self.body_contains.encode() in body)
            and (self.query_contains is None or self.query_contains in query)
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
        self._down_until = 0.0  # time.monotonic() before which every request is refused
        self._open: dict[int, asyncio.BaseTransport] = {}  # by id(request)
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
        hold: bool = False,
        query_contains: str | None = None,
    ) -> Fault:
        fault = Fault(
            method,
            re.compile(path),
            times,
            status,
            delay,
            hang,
            body_contains,
            hold,
            query_contains,
        )
        with self._lock:
            self.faults.append(fault)
        return fault

    def outage(self, seconds: float) -> None:
        """From now on for ``seconds``, answer every request 503; cut the open streams now."""
        with self._lock:
            self._down_until = time.monotonic() + seconds
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._cut_open)

    def _cut_open(self) -> None:
        for transport in list(self._open.values()):
            transport.close()

    def _down(self) -> bool:
        with self._lock:
            return time.monotonic() < self._down_until

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        if not self._ready.wait(timeout=30) or not self.url:
            raise RuntimeError("the fault proxy did not start")
        return self

    def __exit__(self, *_: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def _take(self, method: str, path: str, query: str, body: bytes) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path, query, body):
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
        if self._down():
            return _refusal(503)
        fault = self._take(request.method, request.path, request.rel_url.query_string, body)
        if fault is not None:
            fault.arrived.set()
            while fault.hold and not fault.released.is_set():
                await asyncio.sleep(0.01)
            if fault.hang:
                await asyncio.sleep(3600)
            await asyncio.sleep(fault.delay)
            if fault.status is not None:
                return _refusal(fault.status)
        if request.transport is not None:
            self._open[id(request)] = request.transport
        try:
            return await self._pass(request, session, body)
        finally:
            self._open.pop(id(request), None)

    async def _pass(
        self, request: aiohttp.web.Request, session: aiohttp.ClientSession, body: bytes
    ) -> aiohttp.web.StreamResponse:
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


def _refusal(code: int) -> aiohttp.web.Response:
    return aiohttp.web.Response(
        status=code, body=kubernetes_status(code), content_type="application/json"
    )
