"""Exit codes: a script can tell "the server said no" from "nobody answered" from "too slow"."""

from __future__ import annotations

import enum
import sys

from gorpc.exceptions import ConfigError, DeadlineExceeded, RPCError, Unavailable


class ExitCode(enum.IntEnum):
    OK = 0
    ERROR = 1  # a local problem: bad JSON, a config error, an import that failed
    USAGE = 2  # bad arguments (argparse's own code)
    REMOTE_ERROR = 3  # a server answered with an error: the handler raised, no such method, refused...
    UNAVAILABLE = 4  # no server answered: cannot connect, no nodes, registry unreachable
    DEADLINE_EXCEEDED = 5  # --timeout passed
    NOT_SERVING = 6  # gorpc health: the server answered, and it is not serving


EXIT_CODES_HELP = """exit codes:
  0  success
  1  local error (bad JSON input, configuration, import)
  2  usage error
  3  the server answered with an error (RemoteError, MethodNotFound, InvalidRequest, ...)
  4  unavailable: no server could be reached (connection refused, no nodes, registry down)
  5  deadline exceeded (--timeout)
  6  gorpc health: the server (or service) is not serving"""


def exit_code(error: BaseException) -> ExitCode:
    """The exit code for an error a command ended with."""
    if isinstance(error, DeadlineExceeded):
        return ExitCode.DEADLINE_EXCEEDED
    if isinstance(error, Unavailable):
        return ExitCode.UNAVAILABLE
    if isinstance(error, RPCError):
        return ExitCode.REMOTE_ERROR
    return ExitCode.ERROR


def report(command: str, error: BaseException) -> ExitCode:
    """Print `error` on stderr the way every command does, and return its exit code."""
    kind = "" if isinstance(error, (RPCError, ConfigError)) else f"{type(error).__name__}: "
    print(f"gorpc {command}: {kind}{error}", file=sys.stderr)
    return exit_code(error)
