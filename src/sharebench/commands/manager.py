"""``sharebench manager HOST:PORT``: a Manager server for ``--manager-address`` (another host).

Runs in the foreground until Ctrl-C or SIGTERM. Its authkey comes from
``SHAREBENCH_MANAGER_AUTHKEY`` (hex), never from the command line; without one it makes a
random key and prints the line to run the suite with.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets

from sharebench.errors import UsageError
from sharebench.servers import MANAGER_AUTHKEY_ENV, parse_address

HELP = "run a Manager server that `--manager-address HOST:PORT` benchmarks connect to"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sharebench manager``."""
    parser.add_argument("address", metavar="HOST:PORT",
                        help="where to listen, e.g. 0.0.0.0:50000 (the protocol is pickle: "
                             "only on a network you trust)")


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    from sharebench.mechanisms.manager_tcp import BenchManager

    try:
        host, port = parse_address(args.address)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    authkey_hex = os.environ.get(MANAGER_AUTHKEY_ENV) or None
    try:
        authkey = bytes.fromhex(authkey_hex) if authkey_hex else secrets.token_bytes(32)
    except ValueError:
        raise UsageError(f"{MANAGER_AUTHKEY_ENV} is not hex") from None
    manager = BenchManager(address=(host, port), authkey=authkey)
    try:
        server = manager.get_server()
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound = f"{host}:{server.address[1]}"  # type: ignore[index]  # a TCP address here
    print(f"sharebench manager serving at {bound}", flush=True)
    if not authkey_hex:
        print(f"run the suite with {MANAGER_AUTHKEY_ENV}={authkey.hex()} "
              f"--manager-address {bound}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0
