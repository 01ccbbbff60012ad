"""Experiment planning: target spacing, network topology, patch/batch size and the plans file."""
