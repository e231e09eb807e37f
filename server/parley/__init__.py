"""Parley: real-time buyer/seller chat for marketplaces."""

__version__ = "0.1.0"
