"""Loading the model: from a directory or the hub, GPU-first, in a background thread."""
