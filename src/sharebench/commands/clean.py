"""``sharebench clean``: remove what killed runs left (see :mod:`sharebench.lifecycle`)."""

from __future__ import annotations

import argparse

HELP = ("remove what runs that were killed left: shared memory blocks and named semaphores in "
        "/dev/shm, run directories (library databases, sockets, Ray sessions) with the message "
        "queues and processes they name — never those of a live run; with --cache, also the "
        "worktrees and environments `sharebench ab` keeps")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="only say what would go")
    parser.add_argument("--cache", action="store_true",
                        help="also remove .sharebench-cache/ (or $SHAREBENCH_CACHE): the git "
                             "worktrees and virtual environments of `sharebench ab` sides")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sharebench.lifecycle import clean_stale, clean_stale_dirs, suite_segments
    from sharebench.sides import clean_cache, default_cache

    if args.cache:
        cache = default_cache(Path.cwd())
        if args.dry_run:
            found = [p for sub in ("worktrees", "envs") if (cache / sub).is_dir()
                     for p in sorted((cache / sub).iterdir())]
            for path in found:
                print(f"would remove {path}")
        else:
            for path in clean_cache(Path.cwd(), cache):
                print(f"removed {path}")

    removed = clean_stale(dry_run=args.dry_run)
    for seg in clean_stale_dirs(dry_run=args.dry_run):
        verb_dir = "would remove" if args.dry_run else "removed"
        print(f"{verb_dir} {seg.path}/ (a library's files; run pid {seg.pid} is gone)")
    verb = "would remove" if args.dry_run else "removed"
    for seg in removed:
        print(f"{verb} {seg.path} ({seg.size} bytes, run pid {seg.pid} is gone)")
    live = [s for s in suite_segments() if not s.stale]
    print(f"{verb} {len(removed)} stale block(s); {len(live)} block(s) of live runs left alone")
    return 0
