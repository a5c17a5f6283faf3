"""printf-style file-name patterns such as ``recon_129200_%05d.tif``.

The beamline commands name each image by formatting its index into a pattern, so a
pattern must hold exactly one integer field and nothing that could leave the directory.
"""

import re

from tomotiff.errors import TomotiffError

_FIELD = re.compile(r"%(?:%|[-+ #0]*\d*(?:\.\d+)?([a-zA-Z]))")


def check_pattern(pattern: str, option: str) -> str:
    """Return ``pattern`` if it holds exactly one integer field (``%d``, ``%05d``, ``%i``, ``%u``)."""
    conversions = [m.group(1) for m in _FIELD.finditer(pattern) if m.group(1)]
    if len(conversions) != 1 or conversions[0] not in "diu":
        raise TomotiffError(
            f"{option} {pattern!r} must hold exactly one integer field such as %05d "
            f"(found {len(conversions)} fields); e.g. {option} image_%05d.tif"
        )
    if "/" in pattern or pattern in {".", ".."} or pattern.startswith(".."):
        raise TomotiffError(f"{option} {pattern!r} must be a plain file name, without '/' or '..'")
    return pattern


def format_name(pattern: str, index: int) -> str:
    """The file name of image ``index``."""
    return pattern % index
