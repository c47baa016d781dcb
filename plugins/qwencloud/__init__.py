"""Built-in plugin qwencloud (not implemented yet)."""
