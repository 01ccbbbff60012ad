"""Export annotated cases (volumes + Slicer segmentations) into an nnUNet_raw dataset."""
