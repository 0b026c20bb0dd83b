#!/usr/bin/env python
"""Download a real dataset's files (or one registered file) into <data_root>/downloads, verified.

Resumes interrupted downloads, tries mirrors in order, checks size and sha256
(or the published md5 while the sha256 is unknown) and prints the digest to
record on a first download. Files that need a browser (CMR's annotations) are
explained, not fetched: place them in <data_root>/downloads and re-run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="download.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?",
                   help="a dataset (cub, pascal3d, synface) or one registered file name (see --list)")
    p.add_argument("--root", default=None, help="data root (default: $CSMLAB_DATA, else ./data)")
    p.add_argument("--registry", default=None, metavar="JSON",
                   help="registry overrides: extra mirrors, recorded digests, local servers")
    p.add_argument("--list", action="store_true", help="describe every registered file and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per network operation (default 60)")
    p.add_argument("--retries", type=int, default=3, help="extra attempts per mirror (default 3)")
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.list and not args.name:
        parser.error("name a dataset or a file, or use --list")
    from csmlab.data.download import describe, download, fetch_dataset
    from csmlab.data.prepare import run_cli
    from csmlab.data.registry import DATASETS, load_registry

    def action() -> dict:
        registry = load_registry(args.registry)
        if args.list:
            for name in registry:
                print(describe(name, registry))
            return {}
        kwargs = dict(registry=registry, progress=not args.no_progress, timeout=args.timeout, retries=args.retries)
        if args.name in DATASETS:
            return {name: str(path) for name, path in fetch_dataset(args.name, args.root, **kwargs).items()}
        return {args.name: str(download(args.name, args.root, **kwargs))}

    return run_cli("download.py", action)


if __name__ == "__main__":
    sys.exit(main())
