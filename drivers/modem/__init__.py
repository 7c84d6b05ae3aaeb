"""4G modem drivers: AT commands over serial (at_driver) and the Huawei HiLink HTTP API (hilink)."""
