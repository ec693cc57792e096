"""Kaggle through its official CLI: the client, and the submission's upload and score."""
