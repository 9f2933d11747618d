"""Aggregation: one tidy table of every cell, the paper-style trade-off tables, and the plots drawn from them."""
