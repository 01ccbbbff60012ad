"""Sliding-window prediction with trained models (nnU-Net v2 or AutoSeg results folders).

Modules: ``model_folder`` (open a results folder, load fold weights safely), ``sliding_window`` (window
positions, Gaussian, padding, mirroring), ``predictor`` (one case, in memory), ``export`` (back to the
input's geometry), ``predict_folder`` (a folder of cases, what ``autoseg predict`` runs).
"""
