"""``sharebench clean``: remove shared memory blocks left by runs that were killed."""

from __future__ import annotations

import argparse

HELP = "remove /dev/shm blocks of dead sharebench runs (never those of a live run)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="only say what would go")


def run(args: argparse.Namespace) -> int:
    from sharebench.lifecycle import clean_stale, suite_segments

    removed = clean_stale(dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for seg in removed:
        print(f"{verb} /dev/shm/{seg.name} ({seg.size} bytes, run pid {seg.pid} is gone)")
    live = [s for s in suite_segments() if not s.stale]
    print(f"{verb} {len(removed)} stale block(s); {len(live)} block(s) of live runs left alone")
    return 0
