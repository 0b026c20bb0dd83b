#!/usr/bin/env python
"""Prepare Pix3D under <data_root>/pix3d.

Downloads pix3d.zip (verified, resumable), extracts it safely in its official layout
(pix3d.json, img/, mask/, model/) and counts the records per category. Safe to run again:
finished steps are skipped.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from csmlab.data.prepare import prepare_script  # noqa: E402

main = prepare_script("prepare_pix3d.py", "pix3d", __doc__)

if __name__ == "__main__":
    sys.exit(main())
