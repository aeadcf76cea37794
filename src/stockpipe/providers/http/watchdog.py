"""Total deadlines for response bodies: a read timeout between bytes cannot stop a body
that trickles forever, so one watchdog thread per client cuts the socket of a body still
arriving at its deadline."""

from __future__ import annotations

import math
import socket
import threading
import time

import httpx


class Watchdog:
    """One thread per client that shuts down the socket of a response still being read at
    its deadline (unblocking a stalled read). Replaces a threading.Timer per request, whose
    thread start cost ~0.5 ms of every call (bench/bench_fetch.py).

    The thread starts with the first watched response, sleeps until the earliest deadline
    of the responses being read (at most one per connection), and ends with `stop`.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._changed = threading.Condition()
        self._reading: dict[int, tuple[float, socket.socket]] = {}  # watch id -> (deadline, socket)
        self._fired: set[int] = set()
        self._ids = iter(range(1, 2**63))
        self._wakes_at = math.inf
        self._thread: threading.Thread | None = None
        self._stopped = False

    def watch(self, reply: httpx.Response, deadline: float) -> int:
        """Watch `reply`'s socket until `cancel`; returns the watch id (0: nothing to watch)."""
        stream = reply.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is None:
            return 0
        with self._changed:
            watch = next(self._ids)
            self._reading[watch] = (deadline, sock)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            elif deadline < self._wakes_at:
                self._changed.notify()
        return watch

    def cancel(self, watch: int) -> bool:
        """Stop watching; True when the deadline passed and the socket was shut down."""
        with self._changed:
            self._reading.pop(watch, None)
            if watch in self._fired:
                self._fired.discard(watch)
                return True
        return False

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify()

    def _run(self) -> None:
        with self._changed:
            while not self._stopped:
                now = time.monotonic()
                for watch, (deadline, sock) in list(self._reading.items()):
                    if deadline <= now:
                        del self._reading[watch]
                        self._fired.add(watch)
                        try:
                            sock.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                self._wakes_at = min((deadline for deadline, _ in self._reading.values()), default=math.inf)
                self._changed.wait(None if self._wakes_at == math.inf else self._wakes_at - now)
