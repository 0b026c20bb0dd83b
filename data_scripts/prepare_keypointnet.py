#!/usr/bin/env python
"""Prepare KeypointNet (airplane, car, chair) under <data_root>/keypointnet.

Downloads the annotation JSON files and split lists from the authors' Hugging Face copy
(verified, resumable) into annotations/ and splits/. The clouds (pcds/<class_id>/*.pcd) are
thousands of files: the script says how to fetch them with the Hugging Face CLI, then counts
them. Safe to run again: finished steps are skipped.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from csmlab.data.prepare import prepare_script  # noqa: E402

main = prepare_script("prepare_keypointnet.py", "keypointnet", __doc__)

if __name__ == "__main__":
    sys.exit(main())
