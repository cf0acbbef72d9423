"""Theano's ``sandbox`` names that Theano programs import (``sandbox.rng_mrg``)."""
