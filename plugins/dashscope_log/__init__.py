"""Built-in plugin dashscope_log (not implemented yet)."""
