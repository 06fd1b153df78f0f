"""The balancer daemon: Layer 4 and Layer 7 proxying, algorithms, admin API and events."""

from lab.balancer import compiled

compiled.choose()  # before any compiled module is imported: compiled or source copies
