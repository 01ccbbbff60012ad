"""The raw-dataset integrity check (``autoseg verify_dataset``): every problem at once, each with its fix."""
