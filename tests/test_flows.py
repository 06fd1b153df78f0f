"""The UDP flow table, with a clock that moves only when the test says: expiry, eviction."""

from __future__ import annotations

from lab.balancer.backend import Backend
from lab.balancer.flows import EVICTED, IDLE, Flow, FlowTable

B1 = Backend("b1", "127.0.0.1", 9001)


def flow(n: int, single: bool = False) -> Flow:
    return Flow(f"r{n}", (f"127.0.0.{n}", 40000 + n), B1, single)


def table(manual_clock, idle_s: float = 10.0, max_flows: int = 100) -> FlowTable:
    return FlowTable(manual_clock.clock, idle_s, max_flows)


def test_a_flow_is_known_by_its_client_address_and_port(manual_clock):
    flows = table(manual_clock)
    flows.add(flow(1))
    assert flows.get(("127.0.0.1", 40001)).id == "r1"
    assert flows.get(("127.0.0.1", 40002)) is None  # another port is another flow


def test_a_single_exchange_is_known_by_its_own_id(manual_clock):
    flows = table(manual_clock)
    first, second = flow(1, single=True), Flow("r2", ("127.0.0.1", 40001), B1, True)
    flows.add(first)
    flows.add(second)
    assert len(flows) == 2  # one client, two exchanges in flight at once


def test_flows_end_after_the_idle_timeout_and_not_before(manual_clock):
    flows = table(manual_clock, idle_s=10.0)
    flows.add(flow(1))
    manual_clock.advance(4)
    flows.add(flow(2))
    manual_clock.advance(5.9)
    assert flows.expire() == []
    manual_clock.advance(0.1)  # flow 1 has been idle 10 s
    assert [(f.id, f.ended) for f in flows.expire()] == [("r1", IDLE)]
    manual_clock.advance(4)
    assert [f.id for f in flows.expire()] == ["r2"]
    assert len(flows) == 0 and flows.expired == 2


def test_a_datagram_either_way_keeps_a_flow_alive(manual_clock):
    flows = table(manual_clock, idle_s=10.0)
    one, two = flow(1), flow(2)
    flows.add(one)
    flows.add(two)
    manual_clock.advance(9)
    flows.touch(one)  # a reply, or another datagram from the client
    manual_clock.advance(1)
    assert [f.id for f in flows.expire()] == ["r2"]
    manual_clock.advance(8.9)
    assert flows.expire() == []


def test_a_full_table_evicts_the_flow_idle_the_longest(manual_clock):
    flows = table(manual_clock, max_flows=3)
    made = [flow(n) for n in range(1, 4)]
    for f in made:
        flows.add(f)
        manual_clock.advance(1)
    flows.touch(made[0])  # r1 is now the most recent; r2 has been idle longest
    evicted = flows.add(flow(4))
    assert [(f.id, f.ended) for f in evicted] == [("r2", EVICTED)]
    assert [f.id for f in flows.flows.values()] == ["r3", "r1", "r4"]
    assert len(flows) == 3 and flows.evicted == 1


def test_the_bound_holds_under_a_flood_of_new_flows(manual_clock):
    flows = table(manual_clock, max_flows=50)
    evicted = []
    for n in range(1, 5001):
        evicted += flows.add(Flow(f"r{n}", ("127.0.0.9", n), B1))
        assert len(flows) <= 50
    assert flows.evicted == len(evicted) == 4950
    assert [f.id for f in evicted[:3]] == ["r1", "r2", "r3"]  # oldest first
    assert flows.started == 5000


def test_a_lowered_bound_trims_the_oldest(manual_clock):
    flows = table(manual_clock, max_flows=10)
    for n in range(1, 6):
        flows.add(flow(n))
    flows.configure(10.0, 2)
    assert [f.id for f in flows.trim()] == ["r1", "r2", "r3"]
    assert len(flows) == 2


def test_removing_a_flow_that_is_gone_changes_nothing(manual_clock):
    flows = table(manual_clock)
    one = flow(1)
    flows.add(one)
    flows.remove(one, "backend-down")
    flows.remove(one, "refused")
    assert len(flows) == 0 and one.ended == "refused"
