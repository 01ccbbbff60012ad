"""Choosing the model to deploy from cross-validation: ``accumulate_crossval_results`` and ``find_best_configuration``.

Modules: ``models`` (trained models, which take part and why not), ``accumulate_crossval`` (merge and
evaluate a model's folds), ``find_best`` (the selection), ``instructions`` (inference_information.json
and the commands to run), ``report`` (the printed table).
"""
