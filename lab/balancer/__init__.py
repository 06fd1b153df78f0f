"""The balancer daemon: Layer 4 and Layer 7 proxying, algorithms, admin API and events."""
