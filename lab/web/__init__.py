"""The web lab: the page and its Socket.IO front, and the lab it shows.

The front (Flask + Flask-SocketIO, eventlet; the only modules that import
them): `app` serves the page and the Socket.IO events, `access` and `packets`
guard them, `server` runs it, and `link` relays commands to a lab service and
broadcasts its stream.

The lab itself (no web framework; it runs in the lab service, lab.service, or
in a test's own process): `controller` starts and steers the lab's processes
through their HTTP APIs, `commands` is the command table (each action's
fields, handler in `actions` or `lesson_setup`, parts and help), `turns` lets
commands take turns per part, `relay` streams the balancer's events in batches
with exact counters, and `snapshot` builds the `state` the page gets.
"""
