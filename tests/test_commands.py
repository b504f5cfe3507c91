"""Commands as pure decisions: the event each command records, and each refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger import access, credentials, events
from projections import commands, selectors
from tests.fleetdata import Log, manifest

CATALOGUE = {"a": credentials.Credential(name="a", server="https://a:6443", token_file=Path("/run/a.token"))}


def register(name: str = "a", **labels: str) -> commands.RegisterTarget:
    return commands.RegisterTarget(name, labels, access.Access(credentials=name))


def test_registering_a_new_target_then_the_same_settings_then_new_labels():
    log = Log()
    first = commands.register_target(None, register(env="prod"), CATALOGUE)
    assert isinstance(first, events.TargetRegistered) and first.labels == {"env": "prod"}
    log.add(first)
    assert commands.register_target(log.fleet.targets["a"], register(env="prod"), CATALOGUE) is None
    changed = commands.register_target(log.fleet.targets["a"], register(env="dev"), CATALOGUE)
    assert isinstance(changed, events.TargetUpdated) and changed.labels == {"env": "dev"}


def test_target_input_is_validated_naming_the_field():
    with pytest.raises(selectors.LabelError) as info:
        commands.register_target(None, register(**{"bad key": "x"}), CATALOGUE)
    assert info.value.field == 'labels["bad key"]'
    with pytest.raises(commands.Invalid) as missing:
        commands.register_target(None, commands.RegisterTarget("a", {}), CATALOGUE)
    assert missing.value.field == "credentials"
    with pytest.raises(commands.Invalid) as wrong:
        commands.register_target(None, commands.RegisterTarget("a", {}, access.Access(
            credentials="a", server="ftp://x")), CATALOGUE)
    assert wrong.value.field == "server"


def test_a_retired_target_refuses_every_command():
    log = Log()
    log.target("a")
    log.add(commands.retire_target("a", log.fleet.targets["a"]))
    retired = log.fleet.targets["a"]
    with pytest.raises(commands.Conflict, match="retired"):
        commands.register_target(retired, register(), CATALOGUE)
    with pytest.raises(commands.Conflict, match="retired"):
        commands.retire_target("a", retired)
    with pytest.raises(commands.NotFound):
        commands.retire_target("b", None)


def test_revisions_are_numbered_after_the_highest_ever_and_match_live_targets():
    log = Log()
    log.target("a", env="prod")
    log.target("b", env="prod")
    log.add(events.TargetRetired(target="b"))
    submit = commands.SubmitRevision("web", [manifest()], "env = prod", "first")
    first = commands.submit_revision(None, submit, log.fleet.targets)
    assert (first.revision, first.selector, first.matched_targets) == (1, "env=prod", ["a"])
    log.add(first)
    log.add(commands.remove("web", log.fleet.deployments["web"], ""))
    again = commands.submit_revision(log.fleet.deployments["web"],
                                     commands.SubmitRevision("web", [manifest()]), log.fleet.targets)
    assert (again.revision, again.selector) == (2, "env=prod")


def test_the_first_revision_must_name_a_selector_and_a_bad_one_names_its_position():
    with pytest.raises(commands.Invalid) as info:
        commands.submit_revision(None, commands.SubmitRevision("web", [manifest()]), {})
    assert info.value.field == "selector"
    with pytest.raises(selectors.SelectorError) as bad:
        commands.submit_revision(None, commands.SubmitRevision("web", [manifest()], "env in (a"), {})
    assert bad.value.position == 9


def test_rollback_refusals_and_the_selector_it_restores():
    log = Log()
    log.target("a", env="prod")
    log.target("b", env="dev")
    log.revision("web", "env=prod")
    log.revision("web", "env=dev")
    web = log.fleet.deployments["web"]
    with pytest.raises(commands.Invalid, match=r"no revision 7; it has revisions 1\.\.2") as info:
        commands.roll_back(web, commands.RollBack("web", 7), log.fleet.targets)
    assert info.value.field == "to_revision"
    with pytest.raises(commands.Conflict, match="already current"):
        commands.roll_back(web, commands.RollBack("web", 2), log.fleet.targets)
    event = commands.roll_back(web, commands.RollBack("web", 1), log.fleet.targets)
    assert (event.revision, event.to_revision, event.matched_targets) == (3, 1, ["a"])
    with pytest.raises(commands.NotFound):
        commands.roll_back(None, commands.RollBack("api", 1), log.fleet.targets)


def test_pause_resume_and_remove_refuse_what_would_change_nothing():
    log = Log()
    log.revision("web", "")
    log.add(commands.pause("web", log.fleet.deployments["web"], "incident 42"))
    web = log.fleet.deployments["web"]
    with pytest.raises(commands.Conflict, match="already paused: incident 42"):
        commands.pause("web", web, "")
    log.add(commands.resume("web", web, ""))
    with pytest.raises(commands.Conflict, match="not paused"):
        commands.resume("web", web, "")
    log.add(commands.remove("web", web, "gone"))
    for refused in (lambda: commands.pause("web", web, ""), lambda: commands.resume("web", web, ""),
                    lambda: commands.remove("web", web, ""),
                    lambda: commands.roll_back(web, commands.RollBack("web", 1), {})):
        with pytest.raises(commands.Conflict, match="removed"):
            refused()
    with pytest.raises(commands.NotFound):
        commands.pause("api", None, "")
