"""The installed version, in a module of its own so low-level modules never import the package face."""

__version__ = "0.1.0"
