"""Rank unlabelled cases by model uncertainty, to choose which one to annotate next (``autoseg rank_cases``).

Modules: ``uncertainty`` (pure numpy: per-voxel entropy, member disagreement, per-case scores), ``scores``
(the ranking score and its reason), ``members`` (predict a case once per fold or mirrored copy with the
predictor), ``map_writer`` (float32 maps in the input's geometry), ``report`` (ranking.json/csv, table),
``rank_cases`` (a folder of cases, end to end: ``from autoseg.ranking.rank_cases import rank_cases``).
"""
