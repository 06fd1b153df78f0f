"""The web lab: the page and its Socket.IO front, and the lab it shows.

The front (Flask + Flask-SocketIO, eventlet; the only modules that import
them): `app` serves the page and the Socket.IO events, `access` and `packets`
guard them, `server` runs it, `link` relays commands to a lab service and
broadcasts its stream, and `audience` counts the front's classroom viewers.

The lab itself (no web framework; it runs in the lab service, lab.service, or
in a test's own process): `controller` starts and steers the lab's processes
through their HTTP APIs, `commands` is the command table (each action's
fields, handler in `actions`, `lesson_setup` or `class_actions`, parts and
help), `turns` lets commands take turns per part, `relay` streams the
balancer's events in batches with exact counters, `snapshot` builds the
`state` the page gets, and `room` is the classroom (the presenter's position,
the viewer count, the class's question), lab state like the rest.
"""
