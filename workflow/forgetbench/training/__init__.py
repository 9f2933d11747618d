"""Training: tokenising the domain data, the Trainer subclass with our loss, and one cell's run."""
