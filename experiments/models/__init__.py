"""Model experiments: the MiniLM sentence-encoder port and pruning table, the small causal LM."""
