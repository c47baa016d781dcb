"""Built-in plugin huawei_maas (not implemented yet)."""
