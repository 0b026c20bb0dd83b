#!/usr/bin/env python
"""Prepare SPair-71k under <data_root>/spair.

Downloads SPair-71k.tar.gz (verified, resumable), extracts it safely in its official
layout (SPair-71k/{JPEGImages,ImageAnnotation,PairAnnotation,Segmentation,Layout}) and
counts the pairs per split. Safe to run again: finished steps are skipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="prepare_spair.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=None, help="data root (default: $CSMLAB_DATA, else ./data)")
    p.add_argument("--registry", default=None, metavar="JSON", help="registry overrides (mirrors, digests)")
    p.add_argument("--no-download", action="store_true", help="use only files already in <root>/downloads")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from csmlab.data.prepare import prepare, run_cli
    return run_cli("prepare_spair.py", lambda: prepare(
        "spair", args.root, registry_path=args.registry, download_files=not args.no_download,
        progress=not args.no_progress))


if __name__ == "__main__":
    sys.exit(main())
