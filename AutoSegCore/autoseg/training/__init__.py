"""Training: settings, losses and schedule (the loop, data loading and augmentation follow)."""
