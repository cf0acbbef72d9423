import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

if os.environ.get("SYMGRAPH_TEST_DEVICE") == "emulated-cuda":
    # The whole suite through the CUDA backend on CuPy emulated on the CPU (tests/gpu/
    # emulated_cupy.py): host/device mixing, NumPy-only calls and kernel argument types fail
    # here as they would on a GPU, and every fused kernel runs its generated source.
    os.environ["SYMGRAPH_FLAGS"] = "device=cuda"
    sys.path.insert(0, os.path.join(HERE, "gpu"))
    import emulated_cupy

    emulated_cupy.install()
else:
    # The suite runs on the CPU whatever machine it is on; GPU tests select the device.
    os.environ.setdefault("SYMGRAPH_FLAGS", "device=cpu")

try:
    from hypothesis import settings
except ImportError:  # pragma: no cover - hypothesis is in the test extra
    pass
else:
    # CI replays the same examples on every run (a failure there is reproducible, never a fluke
    # of the draw); local runs keep drawing new ones.
    settings.register_profile("ci", derandomize=True, print_blob=True)
    if os.environ.get("CI"):
        settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _cpu_only_properties_on_the_cpu(request):
    """Tests of host-memory aliasing (``borrow=True``: device memory is never shared with a
    NumPy array) and of how the NumPy backend is compiled (in-place writes, kept buffers) check
    properties that exist on the CPU alone: they run there whatever the device."""
    marks = ("host_memory", "cpu_strategy")
    if not any(request.node.get_closest_marker(m) for m in marks):
        yield
        return
    import symgraph as sg

    with sg.config.change_flags(device="cpu"):
        yield
