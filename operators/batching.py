"""Reads that come due together share one call to their source.

Each policy's daemon reads its sources on its own; policies on the same source that come due
within a short window hand their reads to one batch, and the first of them makes one call for
all (``sources.read_cloudwatch_many``, ``sources.list_new_objects_many``). A reader returns one
result per read, an exception in place of a value for a read that failed, so one failing
query fails only its own policy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

Reader = Callable[[list[Any]], Awaitable[list[Any]]]


@dataclass
class _Batch:
    done: asyncio.Future[list[Any]]
    reads: list[Any] = field(default_factory=list)


class Coalescer:
    """Gathers the reads of each source key for ``window`` seconds, then reads them at once."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._open: dict[Hashable, _Batch] = {}
        self._flushes: set[asyncio.Task[None]] = set()  # held, or the loop may drop them

    async def read(self, key: Hashable, read: Any, reader: Reader) -> Any:
        """This read's result from the next batch of ``key``; raised when it is an exception.

        Every read of one key must take the same ``reader``: the batch's first one is used.
        """
        batch = self._open.get(key)
        if batch is None:
            loop = asyncio.get_running_loop()
            batch = self._open[key] = _Batch(loop.create_future())
            # A task of its own: a cancelled first caller must not strand the others.
            flush = loop.create_task(self._flush(key, batch, reader))
            self._flushes.add(flush)
            flush.add_done_callback(self._flushes.discard)
        index = len(batch.reads)
        batch.reads.append(read)
        result = (await asyncio.shield(batch.done))[index]
        if isinstance(result, Exception):
            raise result
        return result

    async def _flush(self, key: Hashable, batch: _Batch, reader: Reader) -> None:
        await asyncio.sleep(self.window)
        del self._open[key]  # reads from now on go to the next batch
        try:
            batch.done.set_result(await reader(batch.reads))
        except Exception as exc:  # every read of the batch fails with it
            batch.done.set_exception(exc)
