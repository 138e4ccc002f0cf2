"""The server: hosts services, listens on TCP or a Unix socket, stops gracefully."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import socket
import ssl as ssl_module
import stat
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, Self

from gorpc import memory, reflection, serving
from gorpc.access_log import AccessLog
from gorpc.address import MemoryAddress, TcpAddress, UnixAddress, parse_address
from gorpc.config import ConfigSource, ServerConfig
from gorpc.dispatch import Dispatcher
from gorpc.exceptions import ConfigError, RPCError, Unavailable
from gorpc.handoff import HandoffListener
from gorpc.metrics import ServerMetrics
from gorpc.plugins import all_codecs, as_registry, make_metrics, make_resolver, make_tracing
from gorpc.runtime import loop_factory
from gorpc.server_connection import ServerConnection
from gorpc.service import MethodTable, Service
from gorpc.tracing import server_interceptor
from gorpc.types import (
    CallObserver,
    HealthReporting,
    Interceptor,
    MetricsPlugin,
    ServiceInstance,
    TracingPlugin,
)

logger = logging.getLogger("gorpc.server")

CLOSE_TIMEOUT = 5.0  # seconds a closing connection gets to flush before it is aborted
BUILT_IN = frozenset({reflection.NAME, serving.NAME})  # every server's own: never registered


class Server:
    """Serves registered services.

    `serve()` blocks until SIGINT/SIGTERM and then stops gracefully; in async code use
    `async with Server(...)` or `await start()` / `await stop()`.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        config: ConfigSource | ServerConfig = None,
        interceptors: Sequence[Interceptor] = (),
        ssl: ssl_module.SSLContext | None = None,
        **options: Any,
    ) -> None:
        self.config = ServerConfig.load(config, address=address, **options)
        self._interceptors = list(interceptors)
        self._ssl = ssl if ssl is not None else self.config.ssl_context()
        if self._ssl is not None and isinstance(parse_address(self.config.address), MemoryAddress):
            raise ConfigError(
                f"{self.config.address}: memory: addresses carry no TLS (nothing leaves the process)"
            )
        self._table = MethodTable()
        # Plugins are made now, so a mistake in their [plugins.<name>] options is found here.
        self._tracing = make_tracing(self.config)
        self._metrics_plugin = make_metrics(self.config)
        self._resolver = make_resolver(self.config)
        self._registry = as_registry(self._resolver.plugin, self.config)
        self._listener: asyncio.Server | memory.MemoryListener | HandoffListener | None = None
        self._dispatcher: Dispatcher | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._registered: list[ServiceInstance] = []
        self._connections: set[ServerConnection] = set()
        self._oneway_calls: set[asyncio.Task[None]] = set()  # they may outlive their connection
        self._stopped = asyncio.Event()
        self._stopping = False
        self.address = self.config.address  # the bound address once started (port 0 resolved)
        # What gorpc.Health answers; `server.health.set(service, status)` changes it, and a
        # registry that follows health (HealthReporting) takes the instance out of discovery.
        self.health = serving.HealthStatuses()
        self.health.add_listener(self._health_changed)
        self._reports: set[asyncio.Task[None]] = set()
        # As one of several worker processes (see gorpc.workers): connections come from the
        # supervisor over this channel, and the supervisor registers.
        self._worker = False
        self._handoff: socket.socket | None = None

    @property
    def tracing(self) -> TracingPlugin:
        """The tracing plugin this server's spans are made with."""
        return self._tracing.plugin

    @property
    def metrics(self) -> MetricsPlugin:
        """The metrics plugin this server records with."""
        return self._metrics_plugin.plugin

    @property
    def connections(self) -> frozenset[ServerConnection]:
        """The client connections open now."""
        return frozenset(self._connections)

    def register(self, *services: Service) -> None:
        """Host these services. Registering after start, or a name twice, raises."""
        if self._listener is not None:
            raise RuntimeError("register services before the server starts")
        for service in services:
            self._table.add(service)

    @property
    def services(self) -> list[str]:
        """The names of the hosted services (the built-in reflection service left out)."""
        return sorted(name for name in self._table.services if name not in BUILT_IN)

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen, then register each service with the resolver. Raises Unavailable if either fails."""
        if self._listener is not None:
            raise RuntimeError("server already started")
        cfg = self.config
        if cfg.reflection and reflection.NAME not in self._table.services:
            self._table.add(reflection.Reflection(self._table))
        if cfg.health and serving.NAME not in self._table.services:
            self._table.add(serving.Health(self.health))
        for name in self.services:
            if self.health.get(name) is serving.ServingStatus.UNKNOWN:  # the application's own stays
                self.health.set(name, serving.ServingStatus.SERVING)
        self._executor = ThreadPoolExecutor(cfg.max_workers, thread_name_prefix="gorpc-handler")
        interceptors = self._interceptors
        tracing = server_interceptor(self.tracing, self.services, lambda: self.address)
        if tracing is not None:  # outermost: the span covers the other interceptors too
            interceptors = [tracing, *interceptors]
        self._dispatcher = Dispatcher(
            self._table,
            codecs=all_codecs(),
            interceptors=interceptors,
            executor=self._executor,
            max_message_size=cfg.max_message_size,
            compress=cfg.compression == "zlib",
            compression_threshold=cfg.compression_threshold,
            check_replies=cfg.check_replies,
            observers=self._observers(),
        )
        self._listener = await self._listen()
        self.address = self._bound_address()
        try:
            await self._register()
        except BaseException:
            await self._deregister()  # the services registered before the failure
            await self._close_listener()
            await self._close_plugins()
            raise
        logger.info("serving %s on %s", ", ".join(self.services) or "no services", self.address)

    def _observers(self) -> list[CallObserver]:
        """What watches each call end: the access log and metrics, when configured."""
        observers: list[CallObserver] = []
        if self.config.access_log:
            observers.append(AccessLog())
        meter = self.metrics.meter()
        if meter is not None:
            observers.append(
                ServerMetrics(meter, self._calls_running, lambda: len(self._connections), self._table.methods)
            )
        return observers

    def _calls_running(self) -> int:
        """Calls running now on every connection, streams and one-way calls included."""
        return sum(conn.running + conn.streams for conn in list(self._connections))

    async def _listen(self) -> asyncio.Server | memory.MemoryListener | HandoffListener:
        loop = asyncio.get_running_loop()
        address = parse_address(self.config.address)
        try:
            if isinstance(address, MemoryAddress):
                return memory.listen(address.name, self._new_connection)
            if self._handoff is not None:
                return HandoffListener(self._handoff, self._new_connection, self._ssl)
            if isinstance(address, UnixAddress):
                return await loop.create_unix_server(self._new_connection, address.path, ssl=self._ssl)
            return await loop.create_server(
                self._new_connection, address.host, address.port, ssl=self._ssl, reuse_address=True
            )
        except OSError as exc:
            raise Unavailable(f"cannot listen on {self.config.address}: {exc}") from exc

    def _new_connection(self) -> ServerConnection:
        assert self._dispatcher is not None
        cfg = self.config
        return ServerConnection(
            self._dispatcher,
            max_calls=cfg.max_concurrent_calls,
            max_streams=cfg.max_concurrent_streams,
            stream_window=cfg.stream_window,
            draining=self._stopping,
            on_open=self._connections.add,
            on_close=self._connections.discard,
            on_oneway=self._track_oneway,
            max_message_size=cfg.max_message_size,
            heartbeat_interval=cfg.heartbeat_interval,
            heartbeat_timeout=cfg.heartbeat_timeout,
        )

    def _track_oneway(self, task: asyncio.Task[None]) -> None:
        self._oneway_calls.add(task)
        task.add_done_callback(self._oneway_calls.discard)

    def _bound_address(self) -> str:
        assert self._listener is not None
        if isinstance(self._listener, HandoffListener):
            return self.config.address  # the supervisor's, already resolved
        address = parse_address(self.config.address)
        if isinstance(address, (UnixAddress, MemoryAddress)):
            return str(address)
        assert not isinstance(self._listener, memory.MemoryListener)
        host, port = self._listener.sockets[0].getsockname()[:2]
        return str(TcpAddress(address.host or host, port))

    async def _register(self) -> None:
        if self._worker:
            return  # the supervisor's registrar registers the address, once for all workers
        advertised = self.config.advertise_address or self.address
        for name in self.services:
            instance = ServiceInstance(name, advertised, {k: str(v) for k, v in self.config.metadata.items()})
            try:
                await self._registry.register(instance)
            except RPCError:
                raise
            except Exception as exc:
                raise Unavailable(f"cannot register {name} at {advertised} with the resolver: {exc}") from exc
            self._registered.append(instance)
            if self.health.get(name) is not serving.ServingStatus.SERVING and isinstance(
                self._registry, HealthReporting
            ):
                await self._report(instance)  # set before start: not in rotation until SERVING

    def _health_changed(self, service: str, status: serving.ServingStatus) -> None:
        if self._stopping or not isinstance(self._registry, HealthReporting):
            return  # a stop deregisters everything anyway
        for instance in self._registered:
            if service in (serving.WHOLE_SERVER, instance.service):
                report = asyncio.get_running_loop().create_task(self._report(instance))
                self._reports.add(report)
                report.add_done_callback(self._reports.discard)

    async def _report(self, instance: ServiceInstance) -> None:
        assert isinstance(self._registry, HealthReporting)
        up = serving.ServingStatus.SERVING
        is_serving = self.health.get() is up and self.health.get(instance.service) is up
        try:
            await self._registry.set_serving(instance, is_serving)
        except Exception:
            logger.exception(
                "could not report %s at %s as serving=%s", instance.service, instance.address, is_serving
            )

    async def stop(self, grace: float | None = None) -> None:
        """Deregister, stop accepting, let in-flight calls finish within `grace` seconds, then close."""
        if self._stopping:
            await self._stopped.wait()
            return
        if self._listener is None:
            return  # never started
        self._stopping = True
        grace = self.config.grace if grace is None else grace
        # Probes and watchers learn first; then a watch ends, so it holds up no graceful stop.
        self.health.set_all(serving.ServingStatus.NOT_SERVING)
        self.health.close()
        await self._deregister()
        self._listener.close()
        for conn in list(self._connections):
            conn.go_away()
        give_up = asyncio.get_running_loop().time() + grace
        await self._drain(grace)
        await self._wait_for_clients_to_close(give_up)
        await self._close_connections()
        await self._close_listener()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        await self._close_plugins()
        self._stopped.set()
        logger.info("stopped serving on %s", self.address)

    async def _close_plugins(self) -> None:
        # A plugin object passed in may be shared with others: its owner closes it.
        await self._resolver.close()
        await self._tracing.close()
        await self._metrics_plugin.close()

    async def _deregister(self) -> None:
        for instance in self._registered:
            try:
                await self._registry.deregister(instance)
            except Exception:
                logger.exception("could not deregister %s at %s", instance.service, instance.address)
        self._registered.clear()

    async def _drain(self, grace: float) -> None:
        inflight = [task for conn in self._connections for task in conn.tasks()] + list(self._oneway_calls)
        if inflight:
            _, late = await asyncio.wait(inflight, timeout=grace)
            if late:
                logger.warning("cancelling %d call(s) still running after %.1fs grace", len(late), grace)
                for task in late:
                    task.cancel()
                await asyncio.wait(late)

    async def _wait_for_clients_to_close(self, give_up: float) -> None:
        # A gorpc client closes a connection once GOAWAY has come and its calls are answered. Until
        # then it may still send a request it wrote before reading GOAWAY: reading on, the server
        # refuses it as unprocessed instead of resetting the connection under it.
        left = give_up - asyncio.get_running_loop().time()
        conns = [conn.closed for conn in self._connections]
        if conns and left > 0:
            await asyncio.wait(conns, timeout=left)

    async def _close_connections(self) -> None:
        conns = list(self._connections)
        for conn in conns:
            conn.close_gracefully()
        if conns:
            # A peer that stopped reading keeps a close waiting on its send buffer: don't wait forever.
            _, stuck = await asyncio.wait([conn.closed for conn in conns], timeout=CLOSE_TIMEOUT)
            for conn in conns:
                if not conn.closed.done():
                    conn.abort()
            if stuck:
                await asyncio.wait(stuck)

    async def _close_listener(self) -> None:
        if self._listener is None:
            return
        self._listener.close()
        await self._listener.wait_closed()
        address = parse_address(self.config.address)
        if isinstance(address, UnixAddress) and _is_socket(address.path) and not self._worker:
            os.unlink(address.path)  # a worker's is the supervisor's to remove

    async def wait_stopped(self) -> None:
        """Return once the server has stopped."""
        await self._stopped.wait()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- blocking entry point ---------------------------------------------------------------------

    def serve(self) -> None:
        """Start, serve until SIGINT or SIGTERM, then stop gracefully. Blocks. With `workers` > 1
        this process supervises that many worker processes instead (see `gorpc.workers`) and exits
        with the supervisor's code."""
        count = self.config.worker_count
        if count > 1 and not self._worker:
            from gorpc.workers import Supervisor

            code = Supervisor(self, count).run()
            if code:
                raise SystemExit(code)
            return
        with asyncio.Runner(loop_factory=loop_factory(self.config.uvloop)) as runner:
            runner.run(self.serve_until_signal())

    def become_worker(self, address: str, channel: socket.socket) -> None:
        """Make this server (a forked copy, not started) one worker of `address`: it serves the
        connections the supervisor hands it over `channel`, and leaves registration to the
        supervisor's registrar. Called by `gorpc.workers` only."""
        self._worker = True
        self._handoff = channel
        self.config = dataclasses.replace(self.config, address=address, workers=1)

    async def hold_registration(self, address: str, stop: asyncio.Event) -> None:
        """The supervisor's registrar: register `address` for the hosted services, keep it (and
        its health) until `stop` is set, then deregister. Called by `gorpc.workers` only."""
        self.address = address
        for name in self.services:
            self.health.set(name, serving.ServingStatus.SERVING)
        try:
            await self._register()
            await stop.wait()
        finally:
            self._stopping = True
            await self._deregister()
            await self._close_plugins()

    async def serve_until_signal(self) -> None:
        """`serve()` in async code: start, serve until SIGINT or SIGTERM, then stop gracefully (so
        what the application made around the server, its clients say, can be closed after)."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await self.start()
            await stop.wait()
            await self.stop()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except FileNotFoundError:
        return False
