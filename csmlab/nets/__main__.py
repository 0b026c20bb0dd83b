"""``python -m csmlab.nets list | fetch NAME | check NAME`` (``--root`` overrides the data root).

- ``list``   every network with its file, status on disk, URL, licence and who uses it;
- ``fetch``  download one file (resumable, verified) into ``<data_root>/downloads``;
- ``check``  re-hash a downloaded file, compare its digest and load it strictly (never downloads).
"""

from __future__ import annotations

import argparse
import sys

from ..data.download import DownloadError
from .weights import NETS, check, fetch_weights, status, weights_path


def _list(root) -> None:
    for spec in NETS.values():
        f = spec.file
        digest = f"sha256 {f.sha256}" if f.sha256 else (
            f"sha256 starts {f.sha256_prefix}" if f.sha256_prefix else "sha256 not recorded yet")
        print(f"{spec.name}: {spec.summary}")
        print(f"  file: {f.filename} [{status(spec, root)}] at {weights_path(spec, root)}")
        print(f"  url: {', '.join(f.urls)}; {digest}")
        print(f"  licence: {f.licence}")
        if spec.used_by:
            print(f"  used by: {spec.used_by}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m csmlab.nets", description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=None, help="data root (default: $CSMLAB_DATA or ./data)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="networks, files and their status")
    for cmd, text in (("fetch", "download and verify one file"), ("check", "check a downloaded file")):
        p = sub.add_parser(cmd, help=text)
        p.add_argument("name", choices=sorted(NETS))
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            _list(args.root)
        elif args.command == "fetch":
            print(fetch_weights(args.name, args.root, download_ok=True))
        else:
            print(check(args.name, args.root))
    except (DownloadError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
