pytest_plugins = ["tokenmeter.testing"]
