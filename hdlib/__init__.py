"""hdlib: the thin package behind the hdlib research book (see the README for a map)."""
__version__ = "0.1.0"
