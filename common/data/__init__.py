"""Data: reading, checking and splitting labelled text and tagged sentences, and their label sets.

Every reader names the file and line of a bad row (`errors.DataError`) and drops nothing silently.
A new file format, benchmark folder or data check goes here; nothing here knows about tokenizers or models.
"""
