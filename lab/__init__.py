"""Load Balancing Lab: a real load balancer, real backends, and a page that shows them work."""

__version__ = "0.1.0"
