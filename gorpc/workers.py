"""Worker processes: one address served by N processes (`workers = N`), supervised by a parent.

`Server.serve()` with `workers` > 1 runs a `Supervisor` in the calling process instead of serving:
- It listens on the address itself (port 0 is resolved once) and hands each accepted connection to
  the next worker in turn, passing the socket over a Unix socket pair (SCM_RIGHTS; see
  `gorpc.handoff`); after that the connection is the worker's alone, and calls on it never pass
  through the supervisor. Turn by turn means N connections reach N workers (a client with
  `connections_per_host = 2` drives two workers), where SO_REUSEPORT's hash of each connection
  may put both on one worker; it works the same for TCP and Unix sockets on any POSIX system.
- It forks the workers. A worker is a copy of the server as the application built it (services
  registered, plugins made; no event loop has run yet) and serves with `serve()` as a single
  process would, taking its connections from the supervisor and not registering itself.
- It forks one registrar: a process that registers the address for the hosted services with the
  resolver, keeps the registration alive (a Consul session, say), and deregisters when told to.
  The supervisor itself runs no event loop and no thread, so forking a worker again later is safe.
- A worker (or the registrar) that exits is logged and started again, after 0.2 s doubling per
  exit in a row up to 10 s (a process that ran 10 s before exiting starts the count again);
  meanwhile connections go to the others.
- SIGTERM or SIGINT: the registrar deregisters first, the supervisor stops accepting, then every
  worker stops gracefully (calls in flight finish within `grace`), then the supervisor exits 0.

Windows has no fork and cannot run workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import selectors
import signal
import socket
import stat
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gorpc.address import MemoryAddress, TcpAddress, UnixAddress, parse_address
from gorpc.exceptions import ConfigError

if TYPE_CHECKING:
    from gorpc.server import Server

logger = logging.getLogger("gorpc.workers")

SIGNALS = (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT)
FIRST_DELAY, MAX_DELAY, STEADY = 0.2, 10.0, 10.0  # restart backoff (seconds); a run this long resets it
BACKLOG = 1024
REGISTRAR = -1  # the registrar's slot number

_this_worker: int | None = None


def worker_number() -> int | None:
    """In a worker process, its number (0 to N-1); None in any other process. Plugins that bind a
    port of their own (the prometheus endpoint) use it to give each worker its own."""
    return _this_worker


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
        self._listening: socket.socket | None = None
        self._address = ""
        self._slots = [_Slot(n) for n in range(count)] + [_Slot(REGISTRAR)]
        self._channels: dict[int, socket.socket] = {}  # worker number -> the supervisor's end
        self._turn = 0
        self._signals: list[int] = []

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT, then stop every process; the exit code (0: clean)."""
        if not hasattr(os, "fork"):
            raise ConfigError("workers need fork (POSIX): set workers = 1 on this platform")
        self._listen()
        wake_read, wake_write = socket.socketpair()
        wake_read.setblocking(False)
        wake_write.setblocking(False)
        previous = {sig: signal.signal(sig, self._note) for sig in SIGNALS}
        old_wakeup = signal.set_wakeup_fd(wake_write.fileno())
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
            self._supervise(wake_read)
            return self._stop_all()
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            wake_read.close()
            wake_write.close()
            self._release_address()

    def _note(self, signum: int, frame: object) -> None:
        self._signals.append(signum)  # acted on by the loop; the wakeup fd ends its wait

    # -- the address --------------------------------------------------------------------------------

    def _listen(self) -> None:
        address = parse_address(self._server.config.address)
        if isinstance(address, MemoryAddress):
            raise ConfigError(f"{address}: a memory: address lives in one process; it cannot have workers")
        if isinstance(address, UnixAddress):
            if _is_socket(address.path):
                os.unlink(address.path)  # a stale socket of an earlier run
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(address.path)
            self._address = str(address)
        else:
            family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address.host, address.port))
            self._address = str(TcpAddress(address.host, sock.getsockname()[1]))
        sock.listen(BACKLOG)
        sock.setblocking(False)
        self._listening = sock

    def _release_address(self) -> None:
        if self._listening is not None:
            self._listening.close()
            self._listening = None
            address = parse_address(self._server.config.address)
            if isinstance(address, UnixAddress) and _is_socket(address.path):
                os.unlink(address.path)

    # -- processes ----------------------------------------------------------------------------------

    def _start(self, slot: _Slot) -> None:
        ours = theirs = None
        if slot.number != REGISTRAR:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:  # the child: never returns into the supervisor's code
            code = 1
            try:
                for sig in SIGNALS:
                    signal.signal(sig, signal.SIG_DFL)
                signal.set_wakeup_fd(-1)
                self._close_in_child(ours)
                code = self._run_child(slot, theirs)
            except BaseException:
                logger.exception("%s failed", slot.name)
            finally:
                logging.shutdown()
                os._exit(code)
        if theirs is not None and ours is not None:
            theirs.close()
            old = self._channels.pop(slot.number, None)
            if old is not None:
                old.close()
            self._channels[slot.number] = ours
        slot.pid, slot.started, slot.restart_at = pid, time.monotonic(), None

    def _close_in_child(self, ours: socket.socket | None) -> None:
        """A child keeps nothing of the supervisor's: not the listening socket, not the others'
        channels (a worker that held them would keep them open after their worker died)."""
        for sock in (self._listening, ours, *self._channels.values()):
            if sock is not None:
                sock.close()

    def _run_child(self, slot: _Slot, channel: socket.socket | None) -> int:
        server = self._server
        if slot.number == REGISTRAR:
            return _run_registrar(server, self._address)
        assert channel is not None
        global _this_worker
        _this_worker = slot.number
        server.become_worker(self._address, channel)
        server.serve()
        return 0

    def _supervise(self, wake: socket.socket) -> None:
        """Until SIGTERM or SIGINT: hand out connections, reap processes that exit and start them
        again, with backoff."""
        assert self._listening is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._listening, selectors.EVENT_READ, "accept")
            selector.register(wake, selectors.EVENT_READ, "signal")
            while True:
                for key, _ in selector.select(self._until_next_restart()):
                    if key.data == "accept":
                        self._hand_out()
                    else:
                        _drain(wake)
                signals, self._signals = self._signals, []
                if signal.SIGTERM in signals or signal.SIGINT in signals:
                    return
                self._reap()
                now = time.monotonic()
                for slot in self._slots:
                    if slot.restart_at is not None and slot.restart_at <= now:
                        self._start(slot)
                        logger.info("%s started again (pid %d)", slot.name, slot.pid)

    def _hand_out(self) -> None:
        """Accept what is waiting and give each connection to the next live worker in turn."""
        assert self._listening is not None
        while True:
            try:
                conn, _ = self._listening.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors, say: the connection waits in the backlog
                logger.warning("accepting a connection failed: %s", exc)
                return
            with conn:
                self._give(conn)

    def _give(self, conn: socket.socket) -> None:
        for _ in range(self._count):
            number = self._turn
            self._turn = (self._turn + 1) % self._count
            channel = self._channels.get(number)
            if channel is None or not self._slots[number].pid:
                continue
            try:
                socket.send_fds(channel, [b"c"], [conn.fileno()])
                return
            except OSError:  # that worker just died: try the next
                continue
        logger.warning("no worker to take a connection: closed")

    def _until_next_restart(self) -> float | None:
        pending = [s.restart_at for s in self._slots if s.restart_at is not None]
        return max(0.0, min(pending) - time.monotonic()) if pending else None

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
            channel = self._channels.pop(slot.number, None)
            if channel is not None:
                channel.close()
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
        """Deregister first (the registrar), stop accepting, then stop the workers gracefully."""
        registrar = self._slots[-1]
        self._signal_and_wait([registrar])
        if self._listening is not None:
            self._listening.close()  # new connections are refused: clients go elsewhere
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
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


def _drain(wake: socket.socket) -> None:
    with contextlib.suppress(BlockingIOError, InterruptedError):
        while wake.recv(4096):
            pass


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
