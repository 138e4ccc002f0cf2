"""Typed contracts over real sockets: declared types decoded and validated at the server, typed
stubs (async and blocking), typed streams, how typed messages look on the wire, interoperation
with untyped peers both ways, schemas in reflection, and the Python module `describe --python`
writes, imported and called."""

from __future__ import annotations

import asyncio
import datetime
import importlib
import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import msgpack
import msgspec
import pytest

from gorpc import (
    BlockingClient,
    ConfigError,
    InternalError,
    InvalidRequest,
    MethodKind,
    ProtocolError,
    Server,
    Service,
)
from gorpc.cli.pymodule import python_module
from gorpc.codecs import JsonCodec, MsgpackCodec
from gorpc.testing import loopback
from tests.typed_contract import Color, Dimensions, Item, Order, Owner, Receipt, Shop, Size, UntypedShop

pytestmark = pytest.mark.asyncio

ROOT = Path(__file__).resolve().parent.parent
NOON = datetime.datetime(2026, 11, 22, 12, 0, tzinfo=datetime.UTC)
FULL_ITEM = Item(
    name="lamp",
    count=3,
    color=Color.GREEN,
    size=Size.LARGE,
    made=NOON,
    tags=["a", "b"],
    owner=Owner("ann", None),
    dimensions={"width": 2, "height": 3},
    photo=b"\x00\xff",
)


@pytest.fixture(params=["msgpack", "json"])
def codec(request):
    return request.param


async def test_every_kind_of_declared_type_round_trips_with_both_codecs(codec):
    async with loopback(Shop(), codec=codec) as (_, client):
        shop = client.stub(Shop)
        assert await shop.Echo(FULL_ITEM) == FULL_ITEM  # Struct, enums, datetime, dataclass, TypedDict, bytes
        assert await shop.Echo(Item(name="bare")) == Item(name="bare")  # optional fields left out
        owners = await shop.Owners([Owner("ann"), Owner("bob", "b@x")])
        assert owners == {"ann": Owner("ann"), "bob": Owner("bob", "b@x")}
        sizes: Dimensions = {"width": 1}
        assert await shop.Sizes(sizes) == {"width": 1}
        receipt = await shop.Place(Order([Item(name="a", count=2), Item(name="b")]))
        assert receipt == Receipt(3, ["a", "b"], NOON) and isinstance(receipt, Receipt)


async def test_typed_messages_on_the_wire_are_plain_msgpack_and_json():
    """What docs/protocol.md's "Typed messages" says, read back by independent decoders."""
    packed = msgpack.unpackb(MsgpackCodec().encode(FULL_ITEM), timestamp=3)
    assert packed == {
        "name": "lamp",
        "count": 3,
        "color": "green",  # an enum travels as its value
        "size": 2,
        "made": NOON,  # msgpack's timestamp extension
        "tags": ["a", "b"],
        "owner": {"name": "ann", "email": None},  # a dataclass is a map, like a Struct
        "dimensions": {"width": 2, "height": 3},
        "photo": b"\x00\xff",  # bin
    }
    as_json = json.loads(JsonCodec().encode(FULL_ITEM))
    assert as_json["made"] == "2026-11-22T12:00:00Z" and as_json["photo"] == "AP8="  # RFC 3339, base64
    assert as_json["color"] == "green" and as_json["owner"] == {"name": "ann", "email": None}


async def test_a_request_that_does_not_match_gets_invalid_request_with_the_field_path(codec):
    async with loopback(shop := Shop(), codec=codec) as (_, client):
        cases = {
            "Expected `int`, got `str` - at `$.items[0].count`": {"items": [{"name": "a", "count": "2"}]},
            "Object missing required field `name` - at `$.items[1]`": {"items": [{"name": "a"}, {}]},
            "Invalid enum value 'blue' - at `$.items[0].color`": {"items": [{"name": "a", "color": "blue"}]},
            "Expected `array`, got `str` - at `$.items`": {"items": "none"},
        }
        for message, request in cases.items():
            with pytest.raises(InvalidRequest) as caught:
                await client.call("/typed.Shop/Place", request)
            assert caught.value.message == f"request to /typed.Shop/Place does not match Order: {message}"
        assert shop.calls == 0  # the handler never ran
        assert (await client.call("/typed.Shop/Place", {"items": [{"name": "a"}]}))["total"] == 1


async def test_a_reply_that_breaks_the_contract_is_an_internal_error_logged_on_the_server(caplog):
    async with loopback(Shop()) as (_, client):
        with (
            caplog.at_level(logging.ERROR, logger="gorpc.server"),
            pytest.raises(InternalError, match="reply does not match Receipt: Expected `int`, got `str`"),
        ):
            await client.stub(Shop).Wrong(1)
        assert "/typed.Shop/Wrong returned a reply that does not match Receipt" in caplog.text
        assert (await client.stub(Shop).Echo(Item(name="still serving"))).name == "still serving"


async def test_an_untyped_client_calls_a_typed_server(codec):
    async with loopback(Shop(), codec=codec) as (_, client):
        reply = await client.call("/typed.Shop/Place", {"items": [{"name": "a", "count": 2}]})
        at = NOON if codec == "msgpack" else "2026-11-22T12:00:00Z"  # JSON has no datetime type
        assert reply == {"total": 2, "names": ["a"], "at": at}
        assert await client.call("/typed.Shop/Untyped", [1, "x"]) == {
            "got": [1, "x"],
            "method": "/typed.Shop/Untyped",
        }


async def test_a_typed_stub_calls_an_untyped_server(codec):
    async with loopback(UntypedShop(), codec=codec) as (_, client):
        shop = client.stub(Shop)  # the contract, but an old untyped server behind it
        receipt = await shop.Place(Order([Item(name="a", count=2, color=Color.GREEN)]))
        assert receipt == Receipt(2, ["a"], NOON)
        replies = [item async for item in shop.Count(2)]
        assert replies == [
            Item(name="item-0", count=0, color=Color.GREEN),
            Item(name="item-1", count=1, color=Color.GREEN),
        ]


async def test_a_reply_that_does_not_match_the_stubs_type_is_a_protocol_error():
    class Liar(Service):
        name = "typed.Shop"

        async def Place(self, req):
            return {"total": "many"}

    async with loopback(Liar()) as (_, client):
        with pytest.raises(
            ProtocolError, match=r"reply does not match Receipt: Expected `int`, got `str` - at `\$.total`"
        ):
            await client.stub(Shop).Place(Order([]))
        assert await client.call("/typed.Shop/Place", None, reply_type=dict[str, str]) == {"total": "many"}


async def test_typed_streams_of_each_kind():
    async with loopback(Shop()) as (_, client):
        shop = client.stub(Shop)
        assert [item.count async for item in shop.Count(3)] == [0, 1, 2]
        receipt = await shop.Total([Item(name="a", count=2), Item(name="b", count=5)])
        assert (receipt.total, receipt.names) == (7, ["a", "b"])

        async def items():
            for n in range(3):
                yield Item(name=str(n), count=n)

        doubled = [item async for item in shop.Double(items())]
        assert doubled == [Item(name="0", count=0), Item(name="1", count=2), Item(name="2", count=4)]
        # A request stream item that does not match ends the call with the item's path.
        with pytest.raises(
            InvalidRequest, match=r"does not match Item: Expected `int`, got `str` - at `\$.count`"
        ):
            await client.call("/typed.Shop/Total", requests=[{"name": "a"}, {"name": "b", "count": "x"}])


async def test_stub_methods_take_the_per_call_options():
    async with loopback(Shop()) as (_, client):
        shop = client.stub(Shop)
        assert await shop.Untyped(1, metadata={"k": "v"}, timeout=2) == {
            "got": 1,
            "method": "/typed.Shop/Untyped",
        }
        with pytest.raises(TypeError, match="timout"):
            await shop.Untyped(1, timout=2)
        with pytest.raises(AttributeError, match="Shop has no RPC method 'Nope'"):
            shop.Nope  # noqa: B018
        stream = shop.Count(1, timeout=2)
        assert [item.name async for item in stream] == ["item-0"]


async def test_the_blocking_stub_returns_replies_and_iterators():
    def script(address: str) -> tuple[list[str], list[int], int, list[int]]:
        with BlockingClient(address) as client:
            shop = client.stub(Shop)
            return (
                shop.Place(Order([Item(name="a")]), timeout=2).names,
                [item.count for item in shop.Count(2)],
                shop.Total(iter([Item(name="x", count=4)])).total,
                [item.count for item in shop.Double([Item(name="y", count=1)])],
            )

    async with loopback(Shop()) as (server, _):
        assert await asyncio.to_thread(script, server.address) == (["a"], [0, 1], 4, [2])


class Thing:
    """A plain class: msgspec does not know how to build one."""


async def test_a_declared_type_msgspec_cannot_decode_is_refused_at_registration():
    class Bad(Service):
        async def Take(self, req: Thing) -> None:
            pass

    with pytest.raises(ConfigError, match="/Bad/Take: a declared type is not one msgspec can decode"):
        Server(address="127.0.0.1:0").register(Bad())


async def test_reflection_gives_each_methods_json_schemas():
    async with loopback(Shop()) as (_, client):
        [shop] = await client.call("/gorpc.Reflection/Describe", "typed.Shop")
        methods = {m["name"]: m for m in shop["methods"]}
        place = methods["Place"]
        assert place["request_schema"]["$ref"] == "#/$defs/Order"
        assert place["request_schema"]["$defs"]["Order"] == {
            "title": "Order",
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}},
                "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
            },
            "required": ["items"],
        }
        item = place["request_schema"]["$defs"]["Item"]
        assert item["properties"]["made"]["anyOf"][0] == {"type": "string", "x-gorpc-type": "datetime"}
        assert place["request_schema"]["$defs"]["Color"] == {
            "title": "Color",
            "enum": ["green", "red"],
            "x-gorpc-members": {"RED": "red", "GREEN": "green"},  # for `describe --python`
        }
        assert place["reply_schema"]["$ref"] == "#/$defs/Receipt"
        assert methods["Count"]["request_schema"] == {"type": "integer"}  # a stream's item type
        assert methods["Count"]["reply_schema"]["$ref"] == "#/$defs/Item"
        assert methods["Untyped"]["request_schema"] is None and methods["Untyped"]["reply_schema"] is None


def gorpc_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gorpc", *args], capture_output=True, text=True, input=stdin, timeout=60
    )


async def test_describe_python_writes_a_module_whose_stub_calls_the_server(tmp_path, monkeypatch):
    async with loopback(Shop()) as (server, _):
        done = await asyncio.to_thread(gorpc_cli, "describe", "--python", server.address, "typed.Shop")
        assert done.returncode == 0, done.stderr
        (tmp_path / "shop_contract.py").write_text(done.stdout)
        monkeypatch.syspath_prepend(str(tmp_path))
        generated = importlib.import_module("shop_contract")
        async with loopback(Shop()) as (_, client):
            shop = client.stub(generated.Shop)
            item = generated.Item(
                name="lamp", color=generated.Color.GREEN, size=generated.Size.LARGE, made=NOON, photo=b"\x01"
            )
            echoed = await shop.Echo(item)
            assert echoed == item and echoed.made == NOON and echoed.photo == b"\x01"
            receipt = await shop.Place(generated.Order(items=[item]))
            assert (receipt.total, receipt.names, receipt.at) == (1, ["lamp"], NOON)
            assert [i.count async for i in shop.Count(2)] == [0, 1]
            assert (await shop.Total([generated.Item(name="a", count=3)])).total == 3
            assert [i.count async for i in shop.Double([generated.Item(name="a", count=3)])] == [6]
            with pytest.raises(msgspec.ValidationError):  # the generated types validate too
                msgspec.convert({"name": 1}, generated.Item)


async def test_gorpc_call_checks_a_request_against_the_schema_before_sending():
    async with loopback(shop := Shop()) as (server, _):
        bad = await asyncio.to_thread(
            gorpc_cli, "call", server.address, "/typed.Shop/Place", '{"items": [{"count": 1}]}'
        )
        assert bad.returncode != 0
        assert (
            "the request does not match the request schema of /typed.Shop/Place: "
            "Object missing required field `name` - at `$.items[0]`"
        ) in bad.stderr
        assert shop.calls == 0  # refused locally: the server never got it
        good = await asyncio.to_thread(
            gorpc_cli,
            "call",
            server.address,
            "/typed.Shop/Place",
            '{"items": [{"name": "a", "made": "2026-11-22T12:00:00Z"}]}',
        )
        assert good.returncode == 0, good.stderr
        assert json.loads(good.stdout) == {"total": 1, "names": ["a"], "at": "2026-11-22T12:00:00+00:00"}
        lines = '{"name": "a", "count": 1}\n{"name": "b", "count": "two"}\n'
        stream = await asyncio.to_thread(
            gorpc_cli, "call", server.address, "/typed.Shop/Total", "--requests-from-stdin", stdin=lines
        )
        assert "standard input line 2 does not match the request schema of /typed.Shop/Total" in stream.stderr


@pytest.mark.slow
async def test_mypy_infers_stub_reply_types_and_flags_a_wrong_request(tmp_path):
    program = tmp_path / "typed_caller.py"
    program.write_text(
        "from gorpc import BlockingClient, Client\n"
        "from tests.typed_contract import Item, Order, Shop\n\n"
        "async def main(client: Client, blocking: BlockingClient) -> None:\n"
        "    shop = client.stub(Shop)\n"
        "    reveal_type(await shop.Place(Order([]), timeout=2))\n"
        "    reveal_type(shop.Count(3))\n"
        "    reveal_type(await shop.Total([Item(name='a')]))\n"
        "    reveal_type(blocking.stub(Shop).Place(Order([])))\n"
        "    await shop.Place(Item(name='not an order'))\n"
        "    await shop.Place(Order([]), timout=2)\n"
    )
    # The same through a module `gorpc describe --python` wrote: a client without the server's code.
    async with loopback(Shop()) as (_, client):
        described = await client.call("/gorpc.Reflection/Describe", "typed.Shop")
    (tmp_path / "generated_shop.py").write_text(python_module(described))
    generated_program = tmp_path / "generated_caller.py"
    generated_program.write_text(
        "from gorpc import Client\n"
        "from generated_shop import Item, Order, Shop\n\n"
        "async def main(client: Client) -> None:\n"
        "    shop = client.stub(Shop)\n"
        "    reveal_type((await shop.Place(Order(items=[Item(name='a')]))).at)\n"
        "    async for item in shop.Count(3):\n"
        "        reveal_type(item.color)\n"
        "    await shop.Place(Item(name='not an order'))\n"
    )
    config = tmp_path / "mypy.ini"
    config.write_text(
        f"[mypy]\nstrict = True\nplugins = gorpc.mypy_plugin\nmypy_path = {tmp_path}\n"
        "[mypy-opentracing.*]\nignore_missing_imports = True\n"
    )
    result = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(config),
            "--cache-dir",
            str(tmp_path / "cache"),
            str(program),
            str(generated_program),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    lines = [line.split(": ", 1)[1] for line in result.stdout.splitlines() if line.startswith(str(program))]
    assert lines == [
        'note: Revealed type is "tests.typed_contract.Receipt"',
        'note: Revealed type is "gorpc.client_stream.ReplyStream[tests.typed_contract.Item]"',
        'note: Revealed type is "tests.typed_contract.Receipt"',
        'note: Revealed type is "tests.typed_contract.Receipt"',
        'error: Argument 1 to "Place" of "Shop" has incompatible type "Item"; expected "Order"  [arg-type]',
        'error: Unexpected keyword argument "timout" for "Place" of "Shop"; did you mean "timeout"?'
        "  [call-arg]",
        'note: "Place" defined in "gorpc.stub"',
    ], result.stdout
    generated = [
        line.split(": ", 1)[1]
        for line in result.stdout.splitlines()
        if line.startswith(str(generated_program))
    ]
    assert generated == [
        'note: Revealed type is "datetime.datetime"',
        'note: Revealed type is "generated_shop.Color"',
        'error: Argument 1 to "Place" of "Shop" has incompatible type "Item"; expected "Order"  [arg-type]',
    ], result.stdout
    assert f"{tmp_path / 'generated_shop.py'}" not in result.stdout  # the module itself is clean


async def test_kinds_of_interface_methods_come_from_their_annotations():
    from gorpc.stub import contract_methods

    class Interface:
        name = "typed.Shop"

        def Count(self, req: int) -> AsyncIterator[Item]: ...

        async def Place(self, req: Order) -> Receipt: ...

    kinds = {name: sig.kind for name, _, sig in contract_methods(Interface)}
    assert kinds == {"Count": MethodKind.SERVER_STREAMING, "Place": MethodKind.UNARY}


async def test_an_annotation_that_does_not_evaluate_serves_the_method_untyped_with_a_warning(caplog):
    class Later(Service):
        name = "typed.Later"

        async def Take(self, req: NotImportedHere) -> int:  # type: ignore[name-defined]  # noqa: F821
            return 1

    with caplog.at_level(logging.WARNING, logger="gorpc.server"):
        async with loopback(Later()) as (_, client):
            assert await client.call("/typed.Later/Take", "anything") == 1
    assert "/typed.Later/Take: annotation 'NotImportedHere' does not evaluate" in caplog.text


async def test_check_replies_false_skips_the_reply_check():
    async with loopback(Shop(), server_options={"check_replies": False}) as (_, client):
        assert await client.call("/typed.Shop/Wrong", 1) == {"total": "lots"}  # sent unchecked
        with pytest.raises(ProtocolError, match="reply does not match Receipt"):
            await client.stub(Shop).Wrong(1)  # a typed caller still refuses it


async def test_an_untyped_msgpack_body_keeps_the_guard_against_hash_flooding():
    """Untyped bodies are decoded by msgpack, which refuses int map keys (they hash predictably,
    so a map of colliding ones takes quadratic time to build); a declared dict[int, ...] is the
    handler's own choice."""
    async with loopback(Shop()) as (_, client):
        with pytest.raises(InvalidRequest, match="int is not allowed for map key"):
            await client.call("/typed.Shop/Untyped", {1: "a"})
        assert (await client.call("/typed.Shop/Untyped", {"1": "a"}))["got"] == {"1": "a"}


async def test_a_generated_module_keeps_hostile_names_and_text_inert(tmp_path, monkeypatch):
    """What a server sends becomes an identifier or a literal, never code: a module made from
    awkward names and docstrings compiles, and running it defines types and nothing else."""
    item = {
        "title": "Tasks",  # the same name as the service's interface class
        "description": 'ends with a quote" and has \\ a backslash\n"""',
        "type": "object",
        "properties": {
            "class": {"type": "integer"},
            "os.system('boom')": {"type": "string", "default": "'; import os #"},
            "when": {"type": "string", "x-gorpc-type": "datetime"},
        },
        "required": ["class"],
    }
    services = [
        {
            "name": "evil.Tasks",
            "doc": '"""; raise SystemExit #',
            "methods": [
                {
                    "name": "Add",
                    "path": "/evil.Tasks/Add",
                    "kind": "unary",
                    "doc": "fine",
                    "request_schema": {"$ref": "#/$defs/Tasks", "$defs": {"Tasks": item}},
                    "reply_schema": None,
                },
                {"name": "import os", "path": "/evil.Tasks/import os", "kind": "unary", "doc": ""},
            ],
        }
    ]
    source = python_module(services)
    (tmp_path / "evil_contract.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    generated = importlib.import_module("evil_contract")  # runs it: it must only define things
    assert generated.Tasks.name == "evil.Tasks" and generated.Tasks.__doc__ == '"""; raise SystemExit #'
    record = generated.Tasks_(class_=1)  # the type gave way to the interface class
    assert msgspec.to_builtins(record) == {"class": 1, "os.system('boom')": "'; import os #"}
    decoded = msgspec.json.decode(b'{"class": 2, "when": "2026-11-22T12:00:00Z"}', type=generated.Tasks_)
    assert decoded.when == NOON and generated.Tasks_.__doc__ == item["description"]
    assert "client.call('/evil.Tasks/import os', ...)" in source
