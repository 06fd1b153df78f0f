"""PUT /config?fresh=1: the balancer as if just started with that config, in one change."""

from __future__ import annotations

from conftest import Http, wait_for


def served(lab, count: int) -> list[str]:
    client = Http(lab.listen)
    try:
        return [client.get()[1]["x-backend"] for _ in range(count)]
    finally:
        client.close()


def test_a_fresh_config_forgets_turn_order_response_times_and_pins_in_one_event(lab):
    lab.start_balancer()
    reader = lab.events()
    lab.configure(sticky={"mode": "source"})
    assert served(lab, 2) == ["b1", "b1"]  # pinned by the stick table
    lab.configure(sticky={"mode": "off"})
    assert served(lab, 2) == ["b2", "b3"]  # round robin carries on where it was
    document = {"algorithm": "round-robin", "sticky": {"mode": "source"}}

    status, answer = lab.admin("PUT", "/config?fresh=1", document)
    assert status == 200 and answer["changes"]["fresh"] is True
    assert [b["total"] for b in answer["state"]["backends"]] == [0, 0, 0]
    assert all(b["ewma_ms"] == 0 for b in answer["state"]["backends"])
    assert served(lab, 1) == ["b1"]  # the turn starts at the beginning again
    configs = wait_for(lambda: reader.of("config", changes=answer["changes"]))
    assert len(configs) == 1


def test_fresh_takes_only_one_or_zero(lab):
    lab.start_balancer()
    assert lab.admin("PUT", "/config?fresh=yes", {"algorithm": "random"})[0] == 400
    status, answer = lab.admin("PUT", "/config?fresher=1", {"algorithm": "random"})
    assert status == 400 and answer["field"] == "query"
    assert lab.state()["algorithm"] == "round-robin"  # refused whole: nothing changed


def test_a_fresh_config_rolls_a_seeded_balancers_dice_from_the_start_again(lab):
    """A lesson opened twice, or after others, makes the same random choices (replayable)."""
    lab.start_balancer("--seed", "5", "--algorithm", "random")
    first = served(lab, 12)
    assert len(set(first)) > 1  # random, not a rotation in disguise
    assert served(lab, 12) != first  # the dice roll on
    status, _ = lab.admin("PUT", "/config?fresh=1", {"algorithm": "random"})
    assert status == 200
    assert served(lab, 12) == first
