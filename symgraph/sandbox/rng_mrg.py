"""``from symgraph.sandbox.rng_mrg import MRG_RandomStreams`` works as it did in Theano."""

from ..tensor.shared_randomstreams import MRG_RandomStreams, RandomStreams

__all__ = ["MRG_RandomStreams", "RandomStreams"]
