"""Consul discovery at scale, against a real agent: many services, one client calling all of them.

    python benchmarks/consul_scale.py [--services 1000] [--hosts 4]

Starts a Consul dev agent, then `--hosts` processes each hosting its share of the services (one
server per service, one instance each, the process's servers sharing one resolver), then one client
process that calls every service once. Reports: calls made and answered, the client's TCP
connections to the agent (counted from /proc), the agent's CPU seconds while the client resolved
and called everything, and how long until a second instance of the last service, registered after
that, is in the client's node list. Prints a JSON line; the suite puts it in its report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PATTERN = "scale.S{:04d}"
PREFIX = "scale"
HOSTING = {"check_interval": 10.0, "session_ttl": 30.0}


def service_class(name: str) -> Any:
    from gorpc import Service

    async def Which(self: Any, req: Any) -> str:
        return name

    return type(name.replace(".", "_"), (Service,), {"name": name, "Which": Which})


async def host(agent: str, first: int, count: int) -> None:
    """Host services first .. first+count-1 until SIGTERM; say "hosting N" once all registered."""
    from gorpc import Server
    from gorpc_consul import ConsulResolver

    # Many instances on one agent: its TCP check of each every 10 s (not 1 s) and sessions of 30 s,
    # or the agent spends the machine checking them (a host would run one agent per machine).
    resolver = ConsulResolver({"address": agent, "prefix": PREFIX, **HOSTING})
    servers = []
    for i in range(first, first + count):
        server = Server(address="127.0.0.1:0", resolver=resolver)
        server.register(service_class(PATTERN.format(i))())
        servers.append(server)
    await asyncio.gather(*(s.start() for s in servers))
    print(f"hosting {count}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await asyncio.gather(*(s.stop() for s in servers))
    await resolver.close()


def connections_to(port: int) -> int:
    """This process's established TCP connections to `port`, from /proc."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                    count += 1
    return count


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def client(agent: str, agent_pid: int, services: int) -> dict[str, Any]:
    """Call every service once (50 at a time), then time a new instance of the last one."""
    from gorpc import Client, Server
    from gorpc.testing import eventually
    from gorpc_consul import ConsulResolver

    names = [PATTERN.format(i) for i in range(services)]
    plugins = {"consul": {"address": agent, "prefix": PREFIX}}
    cpu_before, started = cpu_seconds(agent_pid), time.monotonic()
    async with Client(resolver="consul", plugins=plugins, timeout=30) as rpc:
        answered = 0
        for start in range(0, services, 50):
            batch = names[start : start + 50]
            replies = await asyncio.gather(*(rpc.call(f"/{n}/Which") for n in batch), return_exceptions=True)
            answered += sum(1 for name, reply in zip(batch, replies, strict=True) if reply == name)
        called_in = time.monotonic() - started
        connections = connections_to(int(agent.rsplit(":", 1)[1]))
        agent_cpu = cpu_seconds(agent_pid) - cpu_before
        resolver = ConsulResolver({"address": agent, "prefix": PREFIX, **HOSTING})
        second = Server(address="127.0.0.1:0", resolver=resolver)
        second.register(service_class(names[-1])())
        registering = asyncio.create_task(second.start())  # the clock runs from before it registers
        routable = await eventually(lambda: len(rpc.known_nodes(names[-1])) == 2, timeout=30, interval=0.002)
        await registering
        await second.stop()
        await resolver.close()
    return {
        "services": services,
        "calls": services,
        "answered": answered,
        "called_in_s": called_in,
        "consul_connections": connections,
        "agent_cpu_s": agent_cpu,
        "new_instance_routable_s": routable,
    }


def measure(services: int, hosts: int) -> dict[str, Any]:
    """The whole run: a dev agent, the hosting processes, the client."""
    from gorpc_consul.testing import dev_agent

    with dev_agent() as agent:
        share = -(-services // hosts)
        started = time.monotonic()
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "host",
                    agent.http_address,
                    str(first),
                    str(min(share, services - first)),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for first in range(0, services, share)
        ]
        try:
            for proc in procs:
                assert proc.stdout is not None
                line = proc.stdout.readline()
                if not line.startswith("hosting"):
                    raise RuntimeError(f"a hosting process failed (exit {proc.wait()})")
            registered_in = time.monotonic() - started
            result = asyncio.run(client(agent.http_address, agent.pid, services))
            result.update(hosts=len(procs), registered_in_s=registered_in)
            return result
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(60)
                if proc.stdout is not None:
                    proc.stdout.close()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "host":
        asyncio.run(host(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=4, help="processes hosting the services")
    args = parser.parse_args()
    print(json.dumps(measure(args.services, args.hosts)))


if __name__ == "__main__":
    main()
