"""Moved: the build benchmark is `python -m pipeline.bench build|resample` (the dataset package
holds the builder only).  This stub says so for one release."""

import sys

if __name__ == "__main__":
    sys.exit("error: python -m gtzan_tfds.bench moved to `python -m pipeline.bench build ...` "
             "and `python -m pipeline.bench resample ...` (same flags)")
