"""The API process's lane workers: started on demand, supervised, gone when idle.

Why: the expensive lane's folds and hash recomputation run in worker processes at idle CPU priority
(api/laneworker.py says why), not in the API process, so they never take the event loop's CPU or
the interpreter's lock, and the memory a whole-fleet replay needs leaves with its worker.

Decisions:

- **On demand, up to one per turn.** A job takes an idle worker or starts one; the lane's turns
  (api/lanes.py) bound how many run at once, so there are at most ``expensive_concurrency``. A
  worker idle for ``expensive_idle_exit`` seconds has its stdin closed and exits: nothing extra
  runs at rest.
- **Secrets stay out.** The command line is ``python -m api.laneworker`` only; the database URL
  arrives in the first message (``lanejobs.Start``), and the environment is the process's without
  the service's own settings (``LEDGER_*``: the admin token, for one).
- **Supervised.** A worker that ends unasked is logged with its exit code; one that ends (or does
  not answer its start within ``db_timeout``) during a request fails that request with 503 +
  Retry-After, and the next request starts a fresh one. A request cancelled while its worker
  works (the client left) kills that worker: its answer would belong to no one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import sys
from typing import Final

from api import lanejobs, problems
from ledger import errors

log = logging.getLogger("ledger.lanes")
MODULE: Final = "api.laneworker"
_STOP_WAIT: Final = 2.0


class WorkerLost(Exception):
    """The worker ended (or did not start) while a request waited for it."""


def environment() -> dict[str, str]:
    """The worker's environment: this process's, without the service's settings (secrets among them)."""
    return {name: value for name, value in os.environ.items() if not name.startswith("LEDGER_")}


@dataclasses.dataclass(eq=False)
class Worker:
    process: asyncio.subprocess.Process
    backend: int = 0
    retiring: bool = False
    serving: bool = False
    timer: asyncio.TimerHandle | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    async def ask(self, message: lanejobs.Request) -> lanejobs.Answer:
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        try:
            stdin.write(lanejobs.frame(message))
            await stdin.drain()
            header = await stdout.readexactly(lanejobs.HEADER)
            return lanejobs.decode_answer(await stdout.readexactly(lanejobs.length(header)))
        except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError) as exc:
            raise WorkerLost(str(exc)) from exc

    def close(self) -> None:
        """Ask it to exit (end of its stdin)."""
        self.retiring = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.process.stdin is not None and not self.process.stdin.is_closing():
            self.process.stdin.close()

    def kill(self) -> None:
        self.close()
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()


class Workers:
    """The lane's worker processes of one API process."""

    def __init__(self, dsn: str, *, timeout: float, idle_exit: float, retry_after: int,
                 log_format: str = "auto", log_level: str = "WARNING") -> None:
        self._start = lanejobs.Start(dsn=dsn, timeout=timeout, log_format=log_format, log_level=log_level)
        self.timeout = timeout
        self.idle_exit = idle_exit
        self.retry_after = retry_after
        self._idle: list[Worker] = []
        self.running: set[Worker] = set()
        self._watchers: set[asyncio.Task[None]] = set()
        self.started = 0
        self.lost = 0
        self._told_backend = False

    def pids(self) -> list[int]:
        return sorted(worker.pid for worker in self.running)

    def backends(self) -> list[int]:
        return sorted(worker.backend for worker in self.running if worker.backend)

    async def run(self, job: lanejobs.Job) -> lanejobs.Answer:
        """``job``'s answer from a worker (the caller holds a turn of the lane)."""
        while self._idle and self._idle[-1].process.returncode is not None:
            self._idle.pop()  # ended while idle (its watcher tells)
        worker = self._idle.pop() if self._idle else await self._spawn()
        if worker.timer is not None:
            worker.timer.cancel()
            worker.timer = None
        worker.serving = True
        try:
            answer = await worker.ask(job)
        except WorkerLost:
            self.lost += 1
            worker.kill()
            code = await self._exit_code(worker)
            log.error("lane worker %d ended during a request (exit code %s); the request gets 503",
                      worker.pid, code)
            raise self._busy("the worker serving this request ended") from None
        except BaseException:
            worker.kill()
            raise
        finally:
            worker.serving = False
        if answer.backend:
            worker.backend = answer.backend
        self._park(worker)
        return answer

    def _busy(self, why: str) -> problems.Problem:
        return problems.Problem(503, "Service busy", f"{why}; retry after {self.retry_after} s",
                                headers={"Retry-After": str(self.retry_after)})

    async def _exit_code(self, worker: Worker) -> int | None:
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(worker.process.wait(), _STOP_WAIT)
        return None

    async def _spawn(self) -> Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", MODULE, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env=environment())
        worker = Worker(process)
        self.running.add(worker)
        self.started += 1
        watcher = asyncio.get_running_loop().create_task(self._watch(worker), name=f"lane worker {process.pid}")
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        try:
            async with asyncio.timeout(self.timeout):
                ready = await worker.ask(self._start)
        except (TimeoutError, WorkerLost) as exc:
            worker.kill()
            raise errors.StoreUnavailable("the lane worker did not connect to the database in time") from exc
        except BaseException:
            worker.kill()
            raise
        if ready.status != "ready":
            worker.close()
            raise errors.StoreUnavailable(f"the lane worker could not connect ({ready.detail or 'no answer'})")
        worker.backend = ready.backend
        if ready.detail and not self._told_backend:
            self._told_backend = True
            log.info("lane workers' database backends keep their CPU priority (%s)", ready.detail)
        return worker

    async def _watch(self, worker: Worker) -> None:
        """Wait for the worker's end; one nobody asked to end is logged with its exit code."""
        code = await worker.process.wait()
        self.running.discard(worker)
        if worker in self._idle:
            self._idle.remove(worker)
        if not worker.retiring and not worker.serving:  # one serving a request: run() tells
            worker.retiring = True
            self.lost += 1
            log.error("lane worker %d exited unasked (exit code %d); the next request starts another",
                      worker.pid, code)

    def _park(self, worker: Worker) -> None:
        if worker.process.returncode is not None or worker.retiring:
            return
        self._idle.append(worker)
        worker.timer = asyncio.get_running_loop().call_later(self.idle_exit, self._retire, worker)

    def _retire(self, worker: Worker) -> None:
        if worker in self._idle:
            self._idle.remove(worker)
            worker.close()

    async def stop(self) -> None:
        """Every worker asked to exit, killed if it does not within a moment (the app's cleanup)."""
        self._idle.clear()
        workers = list(self.running)
        for worker in workers:
            worker.close()
        for worker in workers:
            if await self._exit_code(worker) is None:
                worker.kill()
        for watcher in list(self._watchers):
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
