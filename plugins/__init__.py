"""Built-in tokenmeter plugins, installed as ``tokenmeter_plugins`` and loaded through entry points."""
