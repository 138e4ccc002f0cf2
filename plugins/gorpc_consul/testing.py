"""Real Consul agents for tests: a dev agent, ACLs, a second datacenter, a 3-server cluster.

Each agent listens on free loopback ports, logs to a file in its own directory, and is stopped by
PID. A missing `consul` binary is an error, never a skip: install it with scripts/install-consul.sh.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

PORT_NAMES = ("http", "dns", "server", "serf_lan", "serf_wan")
READY_TIMEOUT = 30.0


def consul_binary() -> str:
    """The path of `consul`; raises if it is not installed."""
    path = shutil.which("consul")
    if path is None:
        raise RuntimeError("the consul binary is not installed: run scripts/install-consul.sh")
    return path


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports free for both TCP and UDP (Consul's serf and DNS use both)."""
    ports: list[int] = []
    held: list[socket.socket] = []
    try:
        while len(ports) < count:
            tcp = socket.socket()
            tcp.bind(("127.0.0.1", 0))
            held.append(tcp)
            port = tcp.getsockname()[1]
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            finally:
                udp.close()
            ports.append(port)
    finally:
        for sock in held:
            sock.close()
    return ports


@dataclass
class ConsulAgent:
    """One running `consul agent` process."""

    name: str
    ports: dict[str, int]
    argv: list[str]
    directory: str
    token: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def address(self, port: str) -> str:
        """`127.0.0.1:<port>` for one of PORT_NAMES."""
        return f"127.0.0.1:{self.ports[port]}"

    @property
    def http_address(self) -> str:
        """The HTTP API, for `[plugins.consul] address`."""
        return self.address("http")

    @property
    def dns_address(self) -> str:
        """The DNS interface, for `[plugins.consul_dns] dns_address`."""
        return self.address("dns")

    @property
    def pid(self) -> int:
        assert self.process is not None, "agent not started"
        return self.process.pid

    def start(self) -> None:
        """Launch the process (again, on the same ports, after a stop)."""
        with open(os.path.join(self.directory, "agent.log"), "ab") as log:  # the child keeps its own copy
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Signal the agent by PID and wait for it to exit (SIGKILL if it will not)."""
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def kill(self) -> None:
        """SIGKILL: the agent dies without leaving the cluster."""
        self.stop(signal.SIGKILL)

    def get(self, path: str) -> object:
        """GET /v1<path> as parsed JSON (None for 404)."""
        return self._request("GET", path)[0]

    def put(self, path: str, data: bytes = b"") -> object:
        """PUT /v1<path> with `data`, as parsed JSON."""
        return self._request("PUT", path, data)[0]

    def index(self, path: str) -> int:
        """The X-Consul-Index of GET /v1<path>: where a blocking query on it would start."""
        return self._request("GET", path)[1]

    def _request(self, method: str, path: str, data: bytes | None = None) -> tuple[object, int]:
        request = urllib.request.Request(f"http://{self.http_address}/v1{path}", data=data, method=method)
        if self.token:
            request.add_header("X-Consul-Token", self.token)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read() or b"null"), int(response.headers.get("X-Consul-Index", 0))
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None, int(exc.headers.get("X-Consul-Index", 0))
            raise

    def leader(self) -> str:
        """The cluster leader's address as this agent sees it ('' when there is none, or no answer)."""
        try:
            return str(self.get("/status/leader") or "")
        except (OSError, ValueError):
            return ""

    def ready(self) -> bool:
        """A leader is known and this node is in the catalog (sessions need both)."""
        try:
            return bool(self.leader()) and self.get(f"/catalog/node/{self.name}") is not None
        except (OSError, ValueError):
            return False

    def wait_for_leader(self, timeout: float = READY_TIMEOUT) -> float:
        """Block until this agent knows a leader and has registered its node; returns the seconds it took."""
        start = time.monotonic()
        while not self.ready():
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"consul agent {self.name} exited ({self.process.returncode}):\n{self.log()}"
                )
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"consul agent {self.name} has no leader after {timeout}s:\n{self.log()}")
            time.sleep(0.05)
        return time.monotonic() - start

    def join_wan(self, other: ConsulAgent) -> None:
        """Join `other`'s datacenter over the WAN pool (both must be servers; dev agents are)."""
        subprocess.run(
            [
                consul_binary(),
                "join",
                "-wan",
                f"-http-addr=http://{self.http_address}",
                other.address("serf_wan"),
            ],
            check=True,
            capture_output=True,
        )

    def log(self, tail: int = 40) -> str:
        """The last lines of the agent's output."""
        with open(os.path.join(self.directory, "agent.log"), "rb") as f:
            return b"".join(f.readlines()[-tail:]).decode(errors="replace")


def agent(
    name: str,
    directory: str,
    *,
    dev: bool = True,
    server: bool = True,
    datacenter: str = "dc1",
    acl_token: str | None = None,
    bootstrap_expect: int | None = None,
    retry_join: Sequence[str] = (),
    retry_join_wan: Sequence[str] = (),
) -> ConsulAgent:
    """An agent (not yet started) on free ports. `acl_token` turns ACLs on, deny by default, with that
    token as master; with `dev` false it keeps a data dir, and is a server (`bootstrap_expect` for
    a cluster) or, with `server` false, a client agent that joins `retry_join`."""
    os.makedirs(directory, exist_ok=True)
    ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True))
    config = ["performance { raft_multiplier = 1 }"]  # elections in about a second, not five
    if acl_token is not None:
        config.append(
            'acl { enabled = true\n default_policy = "deny"\n'
            f' tokens {{ master = "{acl_token}"\n agent = "{acl_token}" }} }}'
        )
    config_file = os.path.join(directory, "extra.hcl")
    with open(config_file, "w") as f:
        f.write("\n".join(config) + "\n")
    argv = [consul_binary(), "agent", "-node", name, "-datacenter", datacenter]
    argv += ["-bind", "127.0.0.1", "-client", "127.0.0.1", "-config-file", config_file, "-grpc-port", "-1"]
    argv += ["-http-port", str(ports["http"]), "-dns-port", str(ports["dns"])]
    argv += ["-server-port", str(ports["server"]), "-serf-lan-port", str(ports["serf_lan"])]
    argv += ["-serf-wan-port", str(ports["serf_wan"])]
    if dev:
        argv.append("-dev")
    else:
        argv += ["-data-dir", os.path.join(directory, "data")]
        if server:
            argv.append("-server")
        if bootstrap_expect is not None:
            argv += ["-bootstrap-expect", str(bootstrap_expect)]
    for address in retry_join:
        argv += ["-retry-join", address]
    for address in retry_join_wan:
        argv += ["-retry-join-wan", address]
    return ConsulAgent(name, ports, argv, directory, token=acl_token)


@contextlib.contextmanager
def dev_agent(*, datacenter: str = "dc1", acl_token: str | None = None) -> Iterator[ConsulAgent]:
    """A started single-server dev agent with a leader; stopped (by PID) on exit."""
    with tempfile.TemporaryDirectory(prefix="gorpc-consul-") as directory:
        consul = agent(f"gorpc-{datacenter}", directory, datacenter=datacenter, acl_token=acl_token)
        consul.start()
        try:
            consul.wait_for_leader()
            yield consul
        finally:
            consul.stop()


@contextlib.contextmanager
def cluster(size: int = 3, *, clients: int = 0) -> Iterator[list[ConsulAgent]]:
    """`size` server agents on loopback that elect a leader among themselves, then `clients` client
    agents joined to them (last in the list, as in a deployment: services and clients talk to
    the agent on their own host); all stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="gorpc-consul-cluster-") as directory:
        servers = [
            agent(f"s{i}", os.path.join(directory, f"s{i}"), dev=False, bootstrap_expect=size)
            for i in range(size)
        ]
        for server in servers:
            for other in servers:
                if other is not server:
                    server.argv += ["-retry-join", other.address("serf_lan")]
        joins = [s.address("serf_lan") for s in servers]
        members = servers + [
            agent(f"c{i}", os.path.join(directory, f"c{i}"), dev=False, server=False, retry_join=joins)
            for i in range(clients)
        ]
        for member in members:
            member.start()
        try:
            for member in members:
                member.wait_for_leader()
            yield members
        finally:
            for member in members:
                member.stop()
