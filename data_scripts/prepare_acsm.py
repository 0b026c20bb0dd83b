#!/usr/bin/env python
"""Prepare ACSM's rigged templates and quadruped annotations under <data_root>/acsm.

Downloads the authors' two cachedir archives (verified, resumable) and extracts them
safely into acsm/templates/cachedir (models/<category>/...) and acsm/annotations/cachedir
(pascal/, imnet_quad/, ...). Images come from PASCAL VOC 2012 and ImageNet, which are not
fetched here. Safe to run again: finished steps are skipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="prepare_acsm.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=None, help="data root (default: $CSMLAB_DATA, else ./data)")
    p.add_argument("--registry", default=None, metavar="JSON", help="registry overrides (mirrors, digests)")
    p.add_argument("--no-download", action="store_true", help="use only files already in <root>/downloads")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from csmlab.data.prepare import prepare, run_cli
    return run_cli("prepare_acsm.py", lambda: prepare(
        "acsm", args.root, registry_path=args.registry, download_files=not args.no_download,
        progress=not args.no_progress))


if __name__ == "__main__":
    sys.exit(main())
