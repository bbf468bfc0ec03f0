"""Resilience drills: the Redis cluster drills (failover, node loss, partition, latency), the service drills each
service declares (SQL crash, broker loss, declare durability, Vault seal) with their shared kit and runner, the
verdict every round is held to, and the upgrade drill across Debian release lines."""
