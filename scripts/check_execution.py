#!/usr/bin/env python3
"""After a book build: how long each notebook took to execute, from the build's jupyter-cache, written to
``_build/execution_times.json`` and printed; fails when a notebook took more than half the cell timeout.

A notebook that needs more than half the timeout in all is one bad day (a loaded machine, a stall like notebook
01's 939 s of idle kernel and client) away from a cell timing out, and at the CI size every notebook should take
well under a minute. A notebook whose execution failed is reported too (the build has failed already).

    python scripts/check_execution.py [--build _build] [--config _config.yml] [--max-seconds S]

Exit status 0 when every executed notebook is within the limit, 1 otherwise, 2 when there is no cache to read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def execution_times(cache_dir: Path) -> dict[str, float]:
    """The latest execution time in seconds of every notebook in the jupyter-cache at ``cache_dir``, by path."""
    from jupyter_cache import get_cache

    latest: dict[str, tuple] = {}
    for record in get_cache(str(cache_dir)).list_cache_records():
        seconds = (record.data or {}).get("execution_seconds")
        if seconds is not None and (record.uri not in latest or record.created > latest[record.uri][0]):
            latest[record.uri] = (record.created, float(seconds))
    return {uri: seconds for uri, (_, seconds) in sorted(latest.items())}


def failed_notebooks(cache_dir: Path) -> list[str]:
    from jupyter_cache import get_cache

    return sorted(r.uri for r in get_cache(str(cache_dir)).list_project_records() if r.traceback)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default="_build", help="the build folder (default: _build)")
    parser.add_argument("--config", default="_config.yml", help="the book's configuration, for execute.timeout")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="the most one notebook may take (default: half of execute.timeout)")
    args = parser.parse_args(argv)
    import yaml

    timeout = yaml.safe_load(Path(args.config).read_text()).get("execute", {}).get("timeout", 30)
    limit = args.max_seconds if args.max_seconds is not None else timeout / 2
    cache_dir = Path(args.build) / ".jupyter_cache"
    if not cache_dir.is_dir():
        print(f"check_execution: no jupyter-cache at {cache_dir} (execute_notebooks: cache builds one)", file=sys.stderr)
        return 2
    times = execution_times(cache_dir)
    failed = failed_notebooks(cache_dir)
    if not times and not failed:
        print(f"check_execution: the cache at {cache_dir} holds no executed notebook", file=sys.stderr)
        return 2
    root = Path.cwd()
    report = {"cell_timeout_s": timeout, "limit_s": limit, "failed": failed,
              "notebooks": {str(Path(u).resolve().relative_to(root)) if Path(u).resolve().is_relative_to(root) else u:
                            round(s, 1) for u, s in times.items()}}
    out = Path(args.build) / "execution_times.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    slow = {name: s for name, s in report["notebooks"].items() if s > limit}
    for name, seconds in report["notebooks"].items():
        print(f"check_execution: {seconds:7.1f} s  {name}{'  <- over the limit' if name in slow else ''}")
    for name in failed:
        print(f"check_execution: execution failed: {name}")
    print(f"check_execution: {len(times)} notebooks, limit {limit:.0f} s (half the {timeout} s cell timeout); "
          f"report in {out}")
    return 1 if slow or failed else 0


if __name__ == "__main__":
    sys.exit(main())
