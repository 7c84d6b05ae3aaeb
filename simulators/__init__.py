"""Device simulators: each speaks a device's real protocol on a real endpoint, for tests and demos."""
