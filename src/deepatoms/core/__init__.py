"""Foundations used by every layer: atomic file writes, progress bars and error types.

Nothing here imports another part of deepatoms.
"""
