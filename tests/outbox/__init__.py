"""Tests of the durable outbox: durability, ordering, acknowledgement, cap, recovery from bad files."""
