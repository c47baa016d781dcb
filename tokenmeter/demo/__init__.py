"""Sample logs for `tokenmeter demo` (synthetic, in the real formats)."""
