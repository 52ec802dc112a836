"""`paratrain serve`: accepted models sold for paid inference over the Open Inference Protocol (docs/assets.md)."""
