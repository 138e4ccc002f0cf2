"""The helloworld and streaming protos for grpcio, compiled at run time with grpcio-tools (nothing kept)."""

from __future__ import annotations

import importlib
import sys
import tempfile
from pathlib import Path
from types import ModuleType

PROTO = """
syntax = "proto3";
package helloworld;
service Greeter { rpc SayHello (HelloRequest) returns (HelloReply) {} }
message HelloRequest { string msg = 1; }
message HelloReply { string msg = 1; }
service Streamer {
  rpc Feed (FeedRequest) returns (stream Item) {}
  rpc Echo (stream Item) returns (stream Item) {}
}
message FeedRequest { int32 count = 1; int32 size = 2; }
message Item { bytes data = 1; }
"""


def load() -> tuple[ModuleType, ModuleType]:
    """(helloworld_pb2, helloworld_pb2_grpc), generated into a temporary directory and imported."""
    from grpc_tools import protoc

    out = Path(tempfile.mkdtemp(prefix="gorpc-bench-proto-"))
    (out / "helloworld.proto").write_text(PROTO)
    status = protoc.main(
        ["protoc", f"-I{out}", f"--python_out={out}", f"--grpc_python_out={out}", "helloworld.proto"]
    )
    if status != 0:
        raise RuntimeError(f"protoc failed with {status}")
    sys.path.insert(0, str(out))
    return importlib.import_module("helloworld_pb2"), importlib.import_module("helloworld_pb2_grpc")
