"""The ``sharebench`` command: a thin argparse front over one module per subcommand.

Each subcommand lives in ``sharebench.commands.<name>`` and provides ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; adding one is one line in ``COMMANDS``.
Errors a user can cause (:class:`~sharebench.errors.SharebenchError`: bad files, bad options)
become one line on stderr and exit code 2, never a traceback; so does a bug, unless
``SHAREBENCH_DEBUG`` is set. Output piped into a command that stops reading (``| head``) ends
quietly.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from sharebench import __version__
from sharebench.errors import SharebenchError

#: Subcommands, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = (
    "list",
    "report",
    "plot",
    "compare",
    "ab",
    "crosscheck",
    "clean",
    "manager",
)

EXIT_OK = 0
EXIT_USAGE = 2


def _load(name: str) -> ModuleType:
    return importlib.import_module(f"sharebench.commands.{name.replace('-', '_')}")


def _plain(text: str) -> str:
    """Help text for argparse, which %-formats it: a literal ``%`` must be doubled."""
    return text.replace("%", "%%")


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with one sub-parser per entry of ``COMMANDS``."""
    parser = argparse.ArgumentParser(
        prog="sharebench",
        description="Benchmarks of how processes share state: speed and correctness.",
    )
    parser.add_argument("--version", action="version", version=f"sharebench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        module = _load(name)
        p = sub.add_parser(name, help=_plain(module.HELP), description=_plain(module.HELP))
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def _quiet_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the interpreter's final flush does
    not raise again (the recipe of Python's ``signal`` documentation)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    # Everything after a lone "--" is passed through (``sharebench ab ... -- -k lock``).
    given = list(sys.argv[1:] if argv is None else argv)
    cut = given.index("--") if "--" in given else len(given)
    args = parser.parse_args(given[:cut])
    args.passthrough = given[cut + 1:]
    module: ModuleType = args._module
    if args.passthrough and not getattr(module, "PASSTHROUGH", False):
        parser.error(f"{args.command} takes no arguments after --")
    try:
        code = module.run(args)
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()  # the reader (`| head`) has what it wanted
        return EXIT_OK
    except SharebenchError as exc:
        print(f"sharebench {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"sharebench {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, but the user still gets one line, not a traceback
        if os.environ.get("SHAREBENCH_DEBUG"):
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        print(
            f"sharebench {args.command}: error: {type(exc).__name__}: {first} "
            "(set SHAREBENCH_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return int(code)
