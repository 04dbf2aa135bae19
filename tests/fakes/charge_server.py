"""A server that counts the calls it receives per task, as a payment API would see them.

`POST /charge/<task id>` takes a little while (so that two callers at once would overlap), and
records when each call began and ended and its `Idempotency-Key`. A server that honours the key
charges once per key, however often the same step is retried.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from email.message import Message

from tests.fakes.local_server import LocalServer, Reply


@dataclass(frozen=True)
class Charge:
    task_id: str
    idempotency_key: str | None
    began: float
    ended: float


class ChargeServer(LocalServer):
    def __init__(self, seconds_per_call: float = 0.03) -> None:
        super().__init__()
        self.seconds_per_call = seconds_per_call
        self._lock = threading.Lock()
        self.charges: list[Charge] = []

    def respond(self, method: str, path: str, headers: Message, body: bytes) -> Reply:
        if method != "POST" or not path.startswith("/charge/"):
            return Reply(404, {"error": "not found"})
        began = time.monotonic()
        time.sleep(self.seconds_per_call)
        charge = Charge(
            path.removeprefix("/charge/"), headers.get("Idempotency-Key"), began, time.monotonic()
        )
        with self._lock:
            self.charges.append(charge)
        return Reply(200, {"charged": charge.task_id})

    def by_task(self) -> dict[str, list[Charge]]:
        with self._lock:
            grouped: dict[str, list[Charge]] = defaultdict(list)
            for charge in self.charges:
                grouped[charge.task_id].append(charge)
        return dict(grouped)

    def overlapping(self) -> list[str]:
        """Tasks that two callers were charging at the same moment."""
        overlaps = []
        for task_id, charges in self.by_task().items():
            ordered = sorted(charges, key=lambda c: c.began)
            if any(b.began < a.ended for a, b in itertools.pairwise(ordered)):
                overlaps.append(task_id)
        return overlaps
