#!/usr/bin/env python
"""Prepare CUB-200-2011 with CMR's annotations under <data_root>/cub.

Downloads CUB_200_2011.tgz (verified, resumable), uses CMR's cachedir.tar.gz
(or CSM's cachedir.zip) from <data_root>/downloads (these need a browser: the
error message says where to get them), extracts both safely in their official
layouts and checks the result. Safe to run again: finished steps are skipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="prepare_cub.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=None, help="data root (default: $CSMLAB_DATA, else ./data)")
    p.add_argument("--registry", default=None, metavar="JSON", help="registry overrides (mirrors, digests)")
    p.add_argument("--no-download", action="store_true", help="use only archives already in <root>/downloads")
    p.add_argument("--without-cmr", action="store_true",
                   help="skip CMR's annotations (no masks or cameras; readers use annotations='cub')")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from csmlab.data.prepare import prepare, run_cli
    return run_cli("prepare_cub.py", lambda: prepare(
        "cub", args.root, registry_path=args.registry, download_files=not args.no_download,
        progress=not args.no_progress, require_cmr=not args.without_cmr))


if __name__ == "__main__":
    sys.exit(main())
