"""Backbones, one file per family."""
__all__: list = []
