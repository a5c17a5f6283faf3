"""printf-style file-name patterns such as ``recon_129200_%05d.tif``.

The beamline commands name each image by formatting its index into a pattern, so a
pattern must hold exactly one integer field and nothing that could leave the directory.
The commands and the workflow check patterns here, with the same rule and message.
"""

import re

from tomotiff.errors import TomotiffError

DEFAULT_PATTERN = "image_%05d.tif"  # the commands' -i/-o default and the workflow's input_pattern default

_FIELD = re.compile(r"%(?:%|[-+ #0]*\d*(?:\.\d+)?([a-zA-Z]))")


def check_pattern(pattern: str, option: str) -> str:
    """Return ``pattern`` if it is a plain, visible file name with exactly one integer field
    (``%d``, ``%05d``, ``%i``, ``%u``); ``option`` names the option or key in the message.

    Hidden names (a leading '.') are refused: tomotiff writes its temporary files under hidden
    names, and file browsers and ``ls`` would not show the images."""
    conversions = [m.group(1) for m in _FIELD.finditer(pattern) if m.group(1)]
    if len(conversions) != 1 or conversions[0] not in "diu":
        raise TomotiffError(
            f"{option} {pattern!r} must hold exactly one integer field such as %05d "
            f"(found {len(conversions)} fields); e.g. {option} image_%05d.tif"
        )
    if "/" in pattern or "\\" in pattern or pattern.startswith("."):
        raise TomotiffError(f"{option} {pattern!r} must be a plain file name: no '/', and no leading '.' (hidden)")
    return pattern


def format_name(pattern: str, index: int) -> str:
    """The file name of image ``index``."""
    return pattern % index


def pattern_index(pattern: str, name: str) -> int | None:
    """The index that ``pattern`` formats into ``name``, or None when no index does."""
    regex, end = "", 0
    for field in _FIELD.finditer(pattern):
        regex += re.escape(pattern[end : field.start()]) + ("%" if field.group(0) == "%%" else r"\s*([-+]?\d+)")
        end = field.end()
    match = re.fullmatch(regex + re.escape(pattern[end:]), name)
    if match is None:
        return None
    index = int(match.group(1))
    return index if format_name(pattern, index) == name else None
