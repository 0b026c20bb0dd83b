#!/usr/bin/env python
"""Prepare ACSM's rigged templates and quadruped annotations under <data_root>/acsm.

Downloads the authors' two cachedir archives (verified, resumable) and extracts them
safely into acsm/templates/cachedir (models/<category>/...) and acsm/annotations/cachedir
(pascal/, imnet_quad/, ...). Images come from PASCAL VOC 2012 and ImageNet, which are not
fetched here. Safe to run again: finished steps are skipped.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from csmlab.data.prepare import prepare_script  # noqa: E402

main = prepare_script("prepare_acsm.py", "acsm", __doc__)

if __name__ == "__main__":
    sys.exit(main())
