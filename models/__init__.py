"""Recurrent language models built on symgraph, and their data pipeline."""
