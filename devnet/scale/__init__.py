"""SCALE type declarations, their portable registry and their codecs."""
