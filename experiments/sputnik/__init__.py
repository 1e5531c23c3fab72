"""Sputnik (Gale et al., SC20) as a benchmark line: build script, C shim and ctypes binding."""
