"""In-process wake-ups for long polls: a node waiting for tasks, a requester waiting for a study.

A waiter subscribes to a key (a node's id, a study's id) *before* it reads the database, then waits on
its :class:`asyncio.Event`; the runner signals the key *after* its transaction commits. So a change is
never missed: either the read already sees it, or the signal arrives after the subscription. Signals
may come from worker threads (the sync endpoints and the sweep run there); they reach each waiter's
event loop with ``call_soon_threadsafe``. Nothing here matters for correctness after a restart: the
database is the truth, and waiters also re-read it periodically as a safety net.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)


class Subscription:
    """One waiter's event; :meth:`wait` returns True when signalled, False on timeout."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.event = asyncio.Event()
        self.since = datetime.now(UTC)

    async def wait(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self.event.wait(), timeout=max(timeout, 0.0))
        except TimeoutError:
            return False
        self.event.clear()
        return True

    def signal(self) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self.event.set()
        elif not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.event.set)


class Notifier:
    """Subscriptions by key; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: dict[Any, set[Subscription]] = {}
        self.closed = False  # the hub is stopping: long polls answer at once

    @asynccontextmanager
    async def subscribe(self, key: Any) -> AsyncIterator[Subscription]:
        """Subscribe to *key* for the duration of the block."""
        subscription = Subscription(asyncio.get_running_loop())
        with self._lock:
            self._subscriptions.setdefault(key, set()).add(subscription)
            if self.closed:
                subscription.event.set()
        try:
            yield subscription
        finally:
            with self._lock:
                waiting = self._subscriptions.get(key)
                if waiting is not None:
                    waiting.discard(subscription)
                    if not waiting:
                        del self._subscriptions[key]

    def signal(self, keys: Iterable[Any]) -> None:
        """Wake every waiter of each key."""
        with self._lock:
            targets = [s for key in keys for s in self._subscriptions.get(key, ())]
        for subscription in targets:
            subscription.signal()

    def close(self) -> None:
        """Wake every waiter, now and later: the hub is stopping, so long polls answer at once instead of
        holding its graceful shutdown open (``phds hub serve`` calls it when SIGTERM/SIGINT arrives)."""
        with self._lock:
            self.closed = True
            targets = [s for waiting in self._subscriptions.values() for s in waiting]
        for subscription in targets:
            if not subscription.loop.is_closed():
                subscription.loop.call_soon_threadsafe(subscription.event.set)

    def waiting(self, key: Any) -> int:
        """How many waiters *key* has (for tests and diagnostics)."""
        with self._lock:
            return len(self._subscriptions.get(key, ()))

    def waiting_since(self, key: Any) -> datetime | None:
        """When *key*'s newest open wait began, or None when nobody waits on it (a node's open long poll
        is how an operator knows the node is connected right now)."""
        with self._lock:
            return max((s.since for s in self._subscriptions.get(key, ())), default=None)
