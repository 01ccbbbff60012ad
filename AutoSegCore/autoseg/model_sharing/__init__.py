"""Model sharing: export trained models as nnU-Net v2 compatible zips and install such zips safely.

- :mod:`autoseg.model_sharing.export_zip` writes ``nnUNetv2_export_model_to_zip``-style zips (paths
  relative to ``nnUNet_results``) for any subset of folds, configurations and checkpoints.
- :mod:`autoseg.model_sharing.safe_extract` checks every entry of a zip (paths, links, sizes,
  compression ratios, duplicates) and extracts it without ever writing outside a destination folder.
- :mod:`autoseg.model_sharing.install_zip` installs a model zip into ``nnUNet_results``: vetted in a
  staging folder (pickles and checkpoints are read without running code), then moved into place,
  never silently overwriting an installed model.
"""
