"""The lesson runner's event reader: every decision made once it is set up is in it.

A reader that the balancer has not yet taken on misses what the balancer decides
meanwhile, and a counting window that misses a decision never catches up (a lesson
then waits for "every answer" until it gives up).
"""

from __future__ import annotations

from conftest import Http, wait_for

from lab.lessons.event_tap import subscribed
from lab.lessons.measure import routes


def test_a_burst_sent_the_moment_the_reader_is_set_up_is_all_in_it(lab):
    lab.start_balancer()
    client = Http(lab.listen)
    try:
        for attempt in range(10):  # each time a new reader, and at once a burst
            tap = subscribed(lab.admin_address)
            try:
                routed_before = sum(b["total"] for b in lab.state()["backends"])
                for _ in range(5):
                    status, _headers, _body = client.get("/")
                    assert status == 200
                routed = sum(b["total"] for b in lab.state()["backends"]) - routed_before
                assert routed == 5
                wait_for(
                    lambda tap=tap: len(routes(tap.since(0))) >= 5,
                    what=f"all 5 decisions in reader {attempt + 1}",
                )
                assert len(routes(tap.since(0))) == 5
            finally:
                tap.close()
    finally:
        client.close()
