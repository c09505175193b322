"""Delivery parsing: Metered webhook bodies to facts (parsing.py), and back out of the inbox (stored.py)."""
