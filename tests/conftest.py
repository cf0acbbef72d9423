import os
import sys

# The suite runs on the CPU whatever machine it is on; GPU tests select the device explicitly.
os.environ.setdefault("SYMGRAPH_FLAGS", "device=cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
