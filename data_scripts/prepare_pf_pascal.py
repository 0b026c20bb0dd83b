#!/usr/bin/env python
"""Prepare PF-PASCAL under <data_root>/pf_pascal.

Downloads PF-dataset-PASCAL.zip and CNNGeometric's val/test pair lists (verified,
resumable), extracts the zip safely, places the lists beside it and counts the pairs.
Safe to run again: finished steps are skipped.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from csmlab.data.prepare import prepare_script  # noqa: E402

main = prepare_script("prepare_pf_pascal.py", "pf_pascal", __doc__)

if __name__ == "__main__":
    sys.exit(main())
