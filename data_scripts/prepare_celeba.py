#!/usr/bin/env python
"""Prepare CelebA with Unsup3D's crop boxes under <data_root>/celeba.

Downloads celeba_crop_bbox.txt (verified, resumable) from Unsup3D's repository. The
in-the-wild images (img_celeba.7z, Google Drive) are fetched and extracted by hand into
<data_root>/celeba/img_celeba; the script says how, then checks that every image the
crop boxes name is there. Safe to run again: finished steps are skipped.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from csmlab.data.prepare import prepare_script  # noqa: E402

main = prepare_script("prepare_celeba.py", "celeba", __doc__)

if __name__ == "__main__":
    sys.exit(main())
