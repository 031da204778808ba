"""Routing of alarm notices to notification targets (pure; hypothesis properties)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from millnet.model.alarms import AlarmNotice, AlarmState, Priority
from millnet.notify.router import accepts, route
from millnet.notify.settings import EVENTS, WebhookTarget

NAMES = ["a", "b", "c", "d", "e"]

targets_st = st.lists(
    st.builds(
        lambda name, events, prio, default: WebhookTarget.model_validate({
            "name": name, "url": "http://127.0.0.1/x", "secret": "k", "events": events,
            "min_priority": prio, "default": default}),
        st.sampled_from(NAMES), st.frozensets(st.sampled_from(sorted(EVENTS)), min_size=1),
        st.sampled_from(list(Priority)), st.booleans()),
    max_size=5, unique_by=lambda t: t.name)

notice_st = st.builds(
    lambda event, prio, notify: AlarmNotice(
        alarm_id=1, event_id=1, event=event, state=AlarmState.UNACK, rule_id=1, rule_name="r",
        tenant_id=1, asset_id=1, asset_path="s/a/l/d", priority=prio, message="m", ts_ns=1,
        notify=tuple(notify)),
    st.sampled_from(sorted(EVENTS)), st.sampled_from(list(Priority)),
    st.lists(st.sampled_from([*NAMES, "zz", "typo"]), max_size=4))


@given(notice_st, targets_st)
def test_routed_targets_pass_their_filters_once_each(notice: AlarmNotice,
                                                      targets: list[WebhookTarget]) -> None:
    result = route(notice, targets)
    by_name = {t.name: t for t in targets}
    assert len(set(result.targets)) == len(result.targets)
    for name in result.targets:
        assert accepts(by_name[name], notice)
        assert notice.event in by_name[name].events
        assert notice.priority <= by_name[name].min_priority


@given(notice_st, targets_st)
def test_named_targets_win_else_defaults_and_unknown_names_are_reported(
        notice: AlarmNotice, targets: list[WebhookTarget]) -> None:
    result = route(notice, targets)
    known = {t.name for t in targets}
    named_known = [n for n in dict.fromkeys(notice.notify) if n in known]
    assert set(result.unknown) == set(notice.notify) - known
    candidates = named_known or [t.name for t in targets if t.default]
    by_name = {t.name: t for t in targets}
    assert list(result.targets) == [n for n in candidates if accepts(by_name[n], notice)]


def test_low_min_priority_takes_all_and_high_takes_high_and_critical() -> None:
    def notice(p: Priority) -> AlarmNotice:
        return AlarmNotice(1, 1, "activated", AlarmState.UNACK, 1, "r", 1, 1, "p", p, "m", 1)

    base = {"url": "http://h/", "secret": "k", "default": True}
    every = WebhookTarget.model_validate({**base, "name": "all"})
    urgent = WebhookTarget.model_validate({**base, "name": "urgent", "min_priority": "high"})
    got = {p: route(notice(p), [every, urgent]).targets for p in Priority}
    assert got[Priority.CRITICAL] == ("all", "urgent")
    assert got[Priority.HIGH] == ("all", "urgent")
    assert got[Priority.MEDIUM] == ("all",)
    assert got[Priority.LOW] == ("all",)
