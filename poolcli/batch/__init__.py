"""Batches: inputs become jobs with named outputs, each job runs whole or fails alone."""
