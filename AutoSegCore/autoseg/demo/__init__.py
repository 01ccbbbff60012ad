"""The demo: a synthetic dataset and an end-to-end run a newcomer can start with one command."""
