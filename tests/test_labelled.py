"""Targets by label (projections/labelled.py): a selector matched against the targets its
equality and set requirements name finds exactly what matching every target finds, and an index
changed by a catch-up finds what one built anew finds while the previous one stays as it was."""

from __future__ import annotations

import random

from projections import commands, fleet, labelled, selectors

SELECTORS = ["", "region=eu", "region==us,tier=edge", "region in (eu,us)", "region in (eu,ap),tier!=core",
             "region=nowhere", "tier notin (core)", "!canary", "canary", "region=eu,canary",
             "tier in (edge),region notin (us)", "size>3", "region=eu,size<5"]


def _fleet(rng: random.Random, count: int) -> dict[str, fleet.Target]:
    found = {}
    for i in range(count):
        labels = {"region": rng.choice(["eu", "us", "ap"]), "tier": rng.choice(["edge", "core"]),
                  "size": str(rng.randint(0, 9))}
        if rng.random() < 0.2:
            labels["canary"] = "yes"
        found[f"t-{i}"] = fleet.Target(f"t-{i}", labels, retired=rng.random() < 0.1)
    return found


def _plain(targets: dict[str, fleet.Target], text: str) -> list[str]:
    return commands._matched(dict(targets), selectors.parse(text))


def test_a_selector_matched_through_the_index_finds_what_matching_every_target_finds():
    found = _fleet(random.Random(7), 400)
    indexed = labelled.build(dict(found))
    for text in SELECTORS:
        assert commands._matched(indexed, selectors.parse(text)) == _plain(found, text), text


def test_equality_and_set_requirements_narrow_the_targets_matched_and_others_do_not():
    found = _fleet(random.Random(3), 200)
    indexed = labelled.build(dict(found))
    eu = {n for n, t in found.items() if t.labels["region"] == "eu"}
    edge_eu = {n for n in eu if found[n].labels["tier"] == "edge"}
    only_eu = indexed.candidates(selectors.parse("region=eu"))
    both = indexed.candidates(selectors.parse("region=eu,tier=edge"))
    assert only_eu is not None and both is not None
    assert set(only_eu) == eu
    assert len(both) <= len(eu) and set(both) >= edge_eu
    assert indexed.candidates(selectors.parse("tier notin (core),!canary")) is None
    assert labelled.candidates(found, selectors.parse("region=eu")) is None


def test_an_index_changed_equals_one_built_anew_and_the_previous_one_is_unchanged():
    rng = random.Random(11)
    found = _fleet(rng, 300)
    first = labelled.build(dict(found))
    kept = {text: commands._matched(first, selectors.parse(text)) for text in SELECTORS}
    current = first
    for _ in range(150):  # past rebuilds: stale names outnumber the targets
        after = dict(current.items())
        before: dict[str, fleet.Target | None] = {}
        for name in [*rng.sample(sorted(after), 5), f"new-{rng.randint(0, 10**6)}"]:
            before[name] = after.get(name)
            after[name] = fleet.Target(name, {"region": rng.choice(["eu", "us", "mars"]), "tier": "edge"},
                                       retired=rng.random() < 0.3)
        current = labelled.changed(current, after, before)
        anew = labelled.build(dict(after))
        for text in SELECTORS:
            assert commands._matched(current, selectors.parse(text)) == commands._matched(anew, selectors.parse(text))
            assert set(current.candidates(selectors.parse(text)) or after) >= set(anew.candidates(
                selectors.parse(text)) or after), text
        # Stale names stay bounded by the targets: those added since the last rebuild, and those
        # of labels left since (counted once, when the rebuild reads the fleet).
        assert current.named() <= sum(len(t.labels) for t in after.values()) + 2 * len(after)
    assert {text: commands._matched(first, selectors.parse(text)) for text in SELECTORS} == kept
