"""The access log: one line per call on `gorpc.access` when `access_log = true`, none otherwise."""

from __future__ import annotations

import logging
import re

import pytest

from gorpc import MethodNotFound, RemoteError
from gorpc.testing import loopback
from tests.conftest import Greeter

pytestmark = pytest.mark.asyncio

LINE = re.compile(
    r"(?P<path>\S+) peer=(?P<peer>\S+) status=(?P<status>\w+) (?P<ms>[\d.]+)ms "
    r"request=(?P<request>\d+)B reply=(?P<reply>\d+)B"
)


def lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, str]]:
    found = [LINE.fullmatch(r.getMessage()) for r in caplog.records if r.name == "gorpc.access"]
    assert all(found), [r.getMessage() for r in caplog.records if r.name == "gorpc.access"]
    return [m.groupdict() for m in found if m]


async def test_each_call_gets_one_line_with_method_peer_status_duration_and_sizes(caplog):
    caplog.set_level(logging.INFO, logger="gorpc.access")
    async with loopback(Greeter(), server_options={"access_log": True}) as (_, client):
        assert await client.call("/helloworld.Greeter/SayHello", {"msg": "hi"}) == {"msg": "hi world"}
        with pytest.raises(RemoteError):
            await client.call("/helloworld.Greeter/Fail", "x")
        with pytest.raises(MethodNotFound):
            await client.call("/helloworld.Greeter/Nope", None)
    ok, failed, unknown = lines(caplog)
    assert (ok["path"], ok["status"], ok["request"], ok["reply"]) == (
        "/helloworld.Greeter/SayHello",
        "OK",
        "8",  # msgpack {"msg": "hi"}
        "14",  # {"msg": "hi world"}
    )
    assert ok["peer"].startswith("127.0.0.1:") and float(ok["ms"]) > 0
    assert (failed["path"], failed["status"]) == ("/helloworld.Greeter/Fail", "REMOTE_ERROR")
    assert (unknown["path"], unknown["status"]) == ("/helloworld.Greeter/Nope", "METHOD_NOT_FOUND")


async def test_the_access_log_is_off_by_default(caplog):
    caplog.set_level(logging.INFO, logger="gorpc.access")
    async with loopback(Greeter()) as (_, client):
        await client.call("/helloworld.Greeter/SayHello", {"msg": "hi"})
    assert lines(caplog) == []
