"""Preprocessing (``autoseg preprocess``): crop to non-zero, normalise, resample to the plan's spacing, store
with the class locations the trainer samples from."""
