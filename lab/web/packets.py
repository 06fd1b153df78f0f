"""Socket.IO packets read leniently, so that a malformed event still gets its answer.

python-socketio drops an event it cannot read with a traceback in the log, and
the client waits for an acknowledgement that never comes. That happens when the
JSON does not parse or nests past Python's limit, or when it is not a list that
starts with the event's name (`421{}`, `421[]`, `421"command"`). Here such an
event becomes the lab's own UNREADABLE event, carrying what was wrong, and
lab.web.app answers it {"ok": false, "error": ...} like any refused command.
"""

from __future__ import annotations

from typing import Any

from socketio import packet

UNREADABLE = "unreadable message"  # an event no page sends: lab.web.app answers it


class LenientPacket(packet.Packet):
    """A Socket.IO packet whose malformed events decode as UNREADABLE instead of failing."""

    def decode(self, encoded_packet: Any) -> int:
        try:
            attachments = super().decode(encoded_packet)
        except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
            if self.packet_type not in (packet.EVENT, packet.BINARY_EVENT):
                raise
            self.data = [UNREADABLE, "the message is not valid JSON (or nests too deep)"]
            return 0
        if self.packet_type == packet.EVENT and not _named(self.data):
            example = '["command", {"action": "pause"}]'
            self.data = [UNREADABLE, f"an event is a list that starts with its name: {example}"]
        return attachments


def _named(data: Any) -> bool:
    return isinstance(data, list) and bool(data) and isinstance(data[0], str)
