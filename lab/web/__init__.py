"""The web lab: a Flask + Flask-SocketIO app that steers the lab and animates every decision.

`app` serves the page and the Socket.IO events, `controller` starts and steers
the lab's processes through their HTTP APIs, `relay` streams the balancer's
events to every browser in batches, and `commands` says which commands exist.
"""
