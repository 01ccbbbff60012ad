"""Ensembling of probability predictions: folders (``autoseg ensemble``) and cross-validation results.

Modules: ``inputs`` (probability files, properties, case-set checks), ``ensemble`` (average and write one
case, a whole folder), ``crossval`` (the validation predictions of several models, for
find_best_configuration), ``output_folder`` (replace a results folder only once it is complete).
"""

from autoseg.ensembling.crossval import ensemble_crossvalidations
from autoseg.ensembling.ensemble import average_probabilities, ensemble_folders, merge_case

__all__ = ["average_probabilities", "ensemble_crossvalidations", "ensemble_folders", "merge_case"]
