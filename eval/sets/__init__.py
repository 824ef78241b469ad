"""Builders of the labelled evaluation sets under data/eval/ (one module per set)."""
