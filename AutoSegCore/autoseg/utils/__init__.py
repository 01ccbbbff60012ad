"""Small helpers shared by every stage (files, JSON, processes)."""
