"""``sharebench list``: every registered benchmark, with what it does."""

from __future__ import annotations

import argparse

HELP = "list the registered mechanisms (mechanism/sync/operation) and start methods"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--operation", help="only this operation")


def run(args: argparse.Namespace) -> int:
    from sharebench.errors import UsageError
    from sharebench.harness import available_start_methods
    from sharebench.mechanisms import OPERATIONS, all_mechanisms

    if args.operation is not None and args.operation not in OPERATIONS:
        raise UsageError(f"unknown operation {args.operation!r}; valid: {', '.join(OPERATIONS)}")
    mechs = all_mechanisms(args.operation)
    width = max(len(m.key) for m in mechs)
    for m in mechs:
        limit = (f" (at most {m.max_processes} process{'es' if m.max_processes > 1 else ''})"
                 if m.max_processes else "")
        print(f"{m.key:<{width}}  {m.family:<12}  {m.doc}{limit}")
    print(f"\nstart methods here: {', '.join(available_start_methods())}")
    return 0
