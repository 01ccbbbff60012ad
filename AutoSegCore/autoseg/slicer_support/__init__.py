"""Pure-Python pieces of the Slicer modules (no Slicer imports), tested in CI without Slicer."""
