import os
import sys

# The suite runs on the CPU whatever machine it is on; GPU tests select the device explicitly.
os.environ.setdefault("SYMGRAPH_FLAGS", "device=cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

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
