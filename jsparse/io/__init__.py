"""Readers and writers of sparse-matrix files."""

from jsparse.io.smtx import load_dlmc_index, load_smtx, save_smtx

__all__ = ["load_dlmc_index", "load_smtx", "save_smtx"]
