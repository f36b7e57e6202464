"""Aliases for the type hints of the public API (numpy.typing): what the
functions return. Inputs are numpy.typing.ArrayLike (anything np.asarray takes)."""
from typing import Any, Tuple

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.floating[Any]]  # float32 or float64: the model's dtype
IntArray = npt.NDArray[np.integer[Any]]
State = Tuple[FloatArray, FloatArray]  # (h, c)
