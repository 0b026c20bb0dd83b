#!/usr/bin/env python
"""Prepare PASCAL3D+ release 1.1 under <data_root>/pascal3d.

Downloads PASCAL3D+_release1.1.zip (FTP, resumable; verified), extracts it
safely in its official layout and checks the annotation, image and split
folders of the chosen classes. Safe to run again: finished steps are skipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="prepare_pascal3d.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=None, help="data root (default: $CSMLAB_DATA, else ./data)")
    p.add_argument("--registry", default=None, metavar="JSON", help="registry overrides (mirrors, digests)")
    p.add_argument("--no-download", action="store_true", help="use only archives already in <root>/downloads")
    p.add_argument("--classes", nargs="+", default=["car", "aeroplane"],
                   help="classes to check (default: car aeroplane)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from csmlab.data.prepare import prepare, run_cli
    return run_cli("prepare_pascal3d.py", lambda: prepare(
        "pascal3d", args.root, registry_path=args.registry, download_files=not args.no_download,
        progress=not args.no_progress, classes=tuple(args.classes)))


if __name__ == "__main__":
    sys.exit(main())
