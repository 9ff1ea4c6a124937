"""Packaged data files (no code): see each folder's README for where the data comes from."""
