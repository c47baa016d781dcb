"""Built-in plugin openrouter (not implemented yet)."""
