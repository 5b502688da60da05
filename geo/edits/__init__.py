"""Edits of single features from the browser or a phone: a feature's stable id and version,
a change written as a small batch of its own, a new feature added by hand."""
