"""Parley: real-time buyer/seller chat for marketplaces."""
