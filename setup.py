"""The one compiled part of tomotiff; everything else is declared in pyproject.toml.

The quantisation loop in C (src/tomotiff/_quantise_loop.c) is optional: an install without a
C compiler or Python's headers still works, and runs the same formula in numpy, more slowly.
"""

from setuptools import Extension, setup

QUANTISE_LOOP = Extension(
    "tomotiff._quantise_loop",
    sources=["src/tomotiff/_quantise_loop.c"],
    optional=True,
    # (x - lo) * scale rounds twice, as in numpy: never a fused multiply-add.
    extra_compile_args=["-O3", "-ffp-contract=off"],
)

setup(ext_modules=[QUANTISE_LOOP])
