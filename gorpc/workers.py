"""Worker processes: one address served by N processes (`workers = N`), supervised by a parent.

`Server.serve()` with `workers` > 1 runs a `Supervisor` in the calling process instead of serving:
- It prepares the address once. TCP on Linux: it binds (without listening) a socket with
  SO_REUSEPORT, which fixes the port (port 0 resolved) and keeps it reserved; each worker then
  listens on that port with SO_REUSEPORT of its own, and the kernel spreads new connections over
  the workers. A Unix socket, or TCP elsewhere: it opens the listening socket itself and every
  worker accepts on that one socket, inherited (the kernel wakes one worker per connection).
- It forks the workers. A worker is a copy of the server as the application built it (services
  registered, plugins made; no event loop has run yet) and serves with `serve()` as a single
  process would, except that it does not register with the resolver.
- It forks one registrar: a process that registers the address for the hosted services with the
  resolver, keeps the registration alive (a Consul session, say), and deregisters when told to.
  The supervisor itself runs no event loop and no thread, so that forking a worker again later is
  safe.
- A worker (or the registrar) that exits is logged and started again, after 0.2 s doubling per
  exit in a row up to 10 s (a process that ran 10 s before exiting starts the count again).
- SIGTERM or SIGINT: the registrar deregisters first, then every worker stops gracefully (calls in
  flight finish within `grace`), then the supervisor exits 0.

The supervisor waits for signals with `sigtimedwait`, which needs POSIX; Windows has no fork and
cannot run workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import stat
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gorpc.address import MemoryAddress, TcpAddress, UnixAddress, parse_address
from gorpc.exceptions import ConfigError

if TYPE_CHECKING:
    from gorpc.server import Server

logger = logging.getLogger("gorpc.workers")

SIGNALS = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}
FIRST_DELAY, MAX_DELAY, STEADY = 0.2, 10.0, 10.0  # restart backoff (seconds); a run this long resets it
BACKLOG = 1024
REGISTRAR = -1  # the registrar's slot number


@dataclass
class _Slot:
    """One process the supervisor keeps running: a worker, or the registrar."""

    number: int
    pid: int = 0
    started: float = 0.0
    exits_in_a_row: int = 0
    restart_at: float | None = None

    @property
    def name(self) -> str:
        return "registrar" if self.number == REGISTRAR else f"worker {self.number}"


class Supervisor:
    """Runs `server` as `count` worker processes plus a registrar, until SIGTERM or SIGINT."""

    def __init__(self, server: Server, count: int) -> None:
        self._server = server
        self._count = count
        self._socket: socket.socket | None = None  # reserved (reuse-port) or shared listening socket
        self._shared = False  # workers accept on `_socket` itself
        self._address = ""
        self._slots = [_Slot(n) for n in range(count)] + [_Slot(REGISTRAR)]
        self._stopping = False

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT, then stop every process; the exit code (0: clean)."""
        if not hasattr(signal, "sigtimedwait"):
            raise ConfigError("workers need POSIX signals and fork: set workers = 1 on this platform")
        self._prepare_address()
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        try:
            for slot in self._slots:
                self._start(slot)
            logger.info(
                "supervising %d workers (pids %s) and a registrar (pid %d) for %s",
                self._count,
                " ".join(str(s.pid) for s in self._slots if s.number != REGISTRAR),
                self._slots[-1].pid,
                self._address,
            )
            self._supervise()
            return self._stop_all()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            self._release_address()

    # -- the address --------------------------------------------------------------------------------

    def _prepare_address(self) -> None:
        address = parse_address(self._server.config.address)
        if isinstance(address, MemoryAddress):
            raise ConfigError(f"{address}: a memory: address lives in one process; it cannot have workers")
        if isinstance(address, UnixAddress):
            if os.path.exists(address.path) and _is_socket(address.path):
                os.unlink(address.path)  # a stale socket of an earlier run
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(address.path)
            self._listen_shared(sock, str(address))
            return
        family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if sys.platform == "linux":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((address.host, address.port))  # bound, not listening: reserves the port only
            self._socket = sock
            self._address = str(TcpAddress(address.host, sock.getsockname()[1]))
            return
        sock.bind((address.host, address.port))
        self._listen_shared(sock, str(TcpAddress(address.host, sock.getsockname()[1])))

    def _listen_shared(self, sock: socket.socket, address: str) -> None:
        sock.listen(BACKLOG)
        sock.setblocking(False)
        self._socket, self._shared, self._address = sock, True, address

    def _release_address(self) -> None:
        if self._socket is not None:
            self._socket.close()
        address = parse_address(self._server.config.address)
        if isinstance(address, UnixAddress) and _is_socket(address.path):
            os.unlink(address.path)

    # -- processes ----------------------------------------------------------------------------------

    def _start(self, slot: _Slot) -> None:
        pid = os.fork()
        if pid == 0:  # the child: never returns into the supervisor's code
            code = 1
            try:
                signal.pthread_sigmask(signal.SIG_SETMASK, set())
                code = self._run_child(slot)
            except BaseException:
                logger.exception("%s failed", slot.name)
            finally:
                logging.shutdown()
                os._exit(code)
        slot.pid, slot.started, slot.restart_at = pid, time.monotonic(), None

    def _run_child(self, slot: _Slot) -> int:
        server = self._server
        if slot.number == REGISTRAR:
            return _run_registrar(server, self._address)
        server.become_worker(self._address, self._socket if self._shared else None)
        server.serve()
        return 0

    def _supervise(self) -> None:
        """Until SIGTERM or SIGINT: reap processes that exit and start them again, with backoff."""
        while True:
            info = signal.sigtimedwait(SIGNALS, self._until_next_restart())
            if info is not None and info.si_signo in (signal.SIGTERM, signal.SIGINT):
                return
            self._reap()
            now = time.monotonic()
            for slot in self._slots:
                if slot.restart_at is not None and slot.restart_at <= now:
                    self._start(slot)
                    logger.info("%s started again (pid %d)", slot.name, slot.pid)

    def _until_next_restart(self) -> float:
        pending = [s.restart_at for s in self._slots if s.restart_at is not None]
        return max(0.0, min(pending) - time.monotonic()) if pending else 3600.0

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = next((s for s in self._slots if s.pid == pid), None)
            if slot is None:
                continue
            slot.pid = 0
            ran = time.monotonic() - slot.started
            slot.exits_in_a_row = 1 if ran >= STEADY else slot.exits_in_a_row + 1
            delay = min(FIRST_DELAY * 2 ** (slot.exits_in_a_row - 1), MAX_DELAY)
            slot.restart_at = time.monotonic() + delay
            logger.warning(
                "%s (pid %d) exited (%s) after %.1fs; starting it again in %.1fs",
                slot.name,
                pid,
                _describe(status),
                ran,
                delay,
            )

    def _stop_all(self) -> int:
        """Deregister first (the registrar), then stop the workers gracefully; wait for all."""
        registrar = self._slots[-1]
        self._signal_and_wait([registrar])
        return self._signal_and_wait(self._slots[:-1])

    def _signal_and_wait(self, slots: list[_Slot]) -> int:
        running = {s.pid: s for s in slots if s.pid}
        for pid in running:
            _kill(pid, signal.SIGTERM)
        failed = 0
        for pid, slot in running.items():
            _, status = os.waitpid(pid, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                failed += 1
                logger.warning("%s (pid %d) stopped with %s", slot.name, pid, _describe(status))
            slot.pid = 0
        return 1 if failed else 0


def _run_registrar(server: Server, address: str) -> int:
    """The registrar process: register `address`, hold it until SIGTERM or SIGINT, deregister."""

    async def hold() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await server.hold_registration(address, stop)

    asyncio.run(hold())
    return 0


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it exited already
        os.kill(pid, sig)


def _describe(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    return f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except FileNotFoundError:
        return False
