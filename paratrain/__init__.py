"""paratrain: a decentralized market for ML training on a Substrate chain."""
__version__ = "0.1.0"
