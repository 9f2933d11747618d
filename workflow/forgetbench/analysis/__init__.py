"""Analyses of the domain data under the pre-trained model (FLOW's sample losses, TALR's token statistics)."""
