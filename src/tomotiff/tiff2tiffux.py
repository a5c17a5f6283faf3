"""`python tiff2tiffux.py ...` and `python -m tomotiff.tiff2tiffux ...`, as the beamline page runs it."""

import sys

from tomotiff.entry import tiff2tiffux_main

if __name__ == "__main__":
    sys.exit(tiff2tiffux_main())
