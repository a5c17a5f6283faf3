"""`python nxs2tiff.py ...` and `python -m tomotiff.nxs2tiff ...`, as the beamline page runs it."""

import sys

from tomotiff.entry import nxs2tiff_main

if __name__ == "__main__":
    sys.exit(nxs2tiff_main())
