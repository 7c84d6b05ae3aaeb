"""Device drivers: each reads one device family through its real protocol into a frozen snapshot."""
