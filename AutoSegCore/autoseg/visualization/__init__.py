"""Quality-control pictures: segmentation overlays on image slices (``autoseg plot_overlay_pngs``)."""
