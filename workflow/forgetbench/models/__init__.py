"""Model sources (local directory, hub id, GGUF inside an installed package) and their conversion to HF directories."""
