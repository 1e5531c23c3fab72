"""Readers of sparse-matrix files."""
