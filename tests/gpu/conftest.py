"""Fixtures of the device tests."""

from __future__ import annotations

import emulated_cupy
import pytest

import symgraph as sg


@pytest.fixture
def device():
    """CUDA emulated on the CPU (``emulated_cupy``) as the device, for one test: it is already
    installed when the whole suite runs on it (SYMGRAPH_TEST_DEVICE=emulated-cuda)."""
    was_installed = emulated_cupy.installed()
    emulated_cupy.install()
    emulated_cupy.reset_stats()
    with sg.config.change_flags(device="cuda"):
        yield emulated_cupy
    if not was_installed:
        emulated_cupy.uninstall()
