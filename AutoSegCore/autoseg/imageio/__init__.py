"""Image reading and writing, in nnU-Net's conventions (channel-first arrays + geometry properties).

Pick a reader/writer with :mod:`autoseg.imageio.registry`; Slicer's ``.seg.nrrd`` files are in
:mod:`autoseg.imageio.segmentation_file`. The package itself imports nothing, so that light modules such as
:mod:`autoseg.imageio.segment_colors` stay cheap to import.
"""
