"""``scan``: loops over sequences with backpropagation through time.

- :func:`scan` (``api.py``): Theano's user API.
- :class:`Scan` (``op.py``): the op; its step graph is compiled once and run by a generated loop
  (``loop.py``); its gradient is a reverse Scan (``grad.py``).
- ``rewrites.py``: moving loop-invariant, per-sequence and output-only work out of the loop.
"""

from . import rewrites
from .api import ScanUpdates, scan
from .op import OutSpec, Scan, scan_nodes_in

__all__ = ["OutSpec", "Scan", "ScanUpdates", "rewrites", "scan", "scan_nodes_in"]
