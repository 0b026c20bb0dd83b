"""Data: synthetic categories with ground truth, real-dataset readers, downloads."""
