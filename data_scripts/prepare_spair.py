#!/usr/bin/env python
"""Prepare SPair-71k under <data_root>/spair.

Downloads SPair-71k.tar.gz (verified, resumable), extracts it safely in its official
layout (SPair-71k/{JPEGImages,ImageAnnotation,PairAnnotation,Segmentation,Layout}) and
counts the pairs per split. Safe to run again: finished steps are skipped.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from csmlab.data.prepare import prepare_script  # noqa: E402

main = prepare_script("prepare_spair.py", "spair", __doc__)

if __name__ == "__main__":
    sys.exit(main())
