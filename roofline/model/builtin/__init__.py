"""Model definitions that live in this repo (need torch)."""
