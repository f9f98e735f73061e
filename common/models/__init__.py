"""Models: the tokenizer and the pretrained model with a task head, label names written into its config.

A new head (a CRF, a decoder-as-classifier option) goes here; how it is trained goes in common.training.
"""
