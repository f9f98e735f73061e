"""Evaluation: model outputs to decisions and scores, through `evaluate` and the metric modules shipped
in evaluate_modules/ (so nothing is fetched from the Hub). A new metric or score key goes here.
"""
