"""Tokens: texts to model inputs (tokenized once and cached) and word-level labels on subword tokens.

Padding, truncation counts, label alignment and windows over long inputs belong here; the label sets
themselves are in common.data, the batching in common.training.
"""
