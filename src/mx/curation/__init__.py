"""Curation of a registry repo: channels and yanks in registry.yaml, and their history.

Edits go through ruamel's round-trip parser so comments, order and quoting survive, and
land atomically; each promotion or yank is then one reviewable commit.
"""
