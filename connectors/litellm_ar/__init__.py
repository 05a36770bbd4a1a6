"""AR providers through the litellm library: the only package that imports litellm."""
