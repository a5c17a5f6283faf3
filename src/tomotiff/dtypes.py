"""Facts about numpy dtypes that more than one stage relies on."""

import numpy as np


def float32_holds(dtype: np.dtype) -> bool:
    """Whether every value of ``dtype`` converts to float32 exactly: bool, 8- and 16-bit
    integers (|x| < 2**24) and float16/float32.

    Binning and quantisation compute in float32 on these (half the memory traffic of float64,
    twice the vector lanes) because the conversion itself then loses nothing; wider integers
    and float64 would be rounded on the way in, so those stages use float64 for them.

    >>> float32_holds(np.dtype(np.uint16)), float32_holds(np.dtype(np.int32))
    (True, False)
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return True
    if dtype.kind in "ui":
        return dtype.itemsize <= 2
    return dtype.kind == "f" and dtype.itemsize <= 4
