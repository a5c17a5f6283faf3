"""`python nxs2tiffux.py ...` and `python -m tomotiff.nxs2tiffux ...`, as the beamline page runs it."""

import sys

from tomotiff.entry import nxs2tiffux_main

if __name__ == "__main__":
    sys.exit(nxs2tiffux_main())
