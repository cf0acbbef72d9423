"""config.warn_float64: every float64 node is named with the user's line."""

from __future__ import annotations

import pytest

import symgraph as sg
import symgraph.tensor as T


def test_warn_float64_names_the_nodes_and_lines():
    x = T.fvector("x")
    y = T.exp(T.cast(x, "float64"))  # the float64 node
    with sg.config.change_flags(warn_float64="raise"):
        with pytest.raises(sg.GraphTypeError, match="float64") as e:
            sg.function([x], y)
        assert "test_warn_float64.py" in str(e.value) and "the float64 node" in str(e.value)
        sg.function([x], T.exp(x))  # float32 throughout: fine
    with sg.config.change_flags(warn_float64="warn"):
        with pytest.warns(UserWarning, match="float64"):
            sg.function([x], y)
