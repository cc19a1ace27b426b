"""Fence before evacuate: the first step of a host failure's recovery, before any Nova call.

The pure part (`judge`) reads what Nova, Pacemaker or the host's BMC say of the reported host and
what this event already did, and says what to do next, in this order:
1. the host is alive after all (nova-compute reported after the failure report, or Pacemaker
   shows the node online): the event ends `HostRecovered`, nothing is fenced;
2. the host is confirmed off by the segment's fencing method: with `pacemaker`, a successful
   fencing of the node completed after it last came online; with `redfish` or `ipmi`, its BMC
   reading PowerState Off; with `none` (an explicit opt-in), the reporter's
   `host_status: NORMAL`. A confirmation found before any request skips the fencing;
3. otherwise a fencing request is sent (Pacemaker's fence of the node, a BMC hard power off),
   at most `fencing.attempts` of them, `fencing.attemptTimeoutSeconds` apart, each counted in
   status before it goes out, so a restarted operator waits on the request already sent instead
   of fencing again;
4. a host still not confirmed off after `hostFailure.fencingTimeoutSeconds` (or once every
   request has had its time) is never evacuated: the event ends `HostNotConfirmedDown`, saying
   why and how long it waited.

`FenceHost` runs it against the ports and records the proof (status.fencing) before the
workflow goes on. Masakari and our earlier code took a node offline after a clean shutdown for a
fenced one; a hypervisor whose cluster stack was stopped by hand runs its instances still, so
it is not: it is fenced first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from controller.recovery.gates import Decision, Report, Verdict
from controller.recovery.host_failure import Timing
from controller.recovery.nova import ComputeService, NotFound, NovaError
from controller.recovery.outcome import Outcome
from controller.recovery.pacemaker import ClusterState, FenceStatus, PacemakerError
from controller.recovery.ports import Cloud, HostRecord
from controller.recovery.power import BMCError, PowerState
from controller.recovery.progress import Progress
from controller.resources.failure_event import FencingRecord, StepState
from controller.resources.segment import FailoverSegmentSpec, FencingMethod

FENCE = "FenceHostTask"

# A fencing that completed this long before the report was made belongs to an earlier failure
# (Pacemaker fences a lost node within its stonith-timeout, seconds to a minute), whenever the
# operator saw the node come online.
FENCING_RECORD_MAX_AGE = timedelta(minutes=10)
# Nova's heartbeat time and the report's time come from different clocks.
HEARTBEAT_SKEW = timedelta(seconds=15)
# A request that failed (the device answered no) is sent again this soon, not after a whole
# attempt timeout: there is nothing to wait for.
RETRY_FAILED_REQUEST = timedelta(seconds=5)
# Reads of the evidence while a fencing is awaited: quick at first, then less often.
FIRST_POLL = 0.25
LAST_POLL = 2.0


@dataclass(frozen=True)
class Evidence:
    """What Nova and the fencing method's device say of the reported host, read just now."""

    heartbeat: datetime | None = None  # nova-compute's last report to Nova
    nova_unreadable: str | None = None  # why Nova could not say whether the host is alive
    cluster: ClusterState | None = None  # pacemaker: None when not readable (see unavailable)
    power: PowerState | None = None  # redfish/ipmi: None when not readable (see unavailable)
    unavailable: str = "no Pacemaker access is configured for this cloud"
    device: bool = True  # a fencing device is configured to send requests to
    # The node was seen out of the cluster and back since the report (or since this event
    # confirmed it off): only then does "online" mean it came back rather than not yet lost.
    returned: bool = False
    online_since: datetime | None = None  # when the operator saw the node (re)join the cluster


class Action(StrEnum):
    RECOVERED = "HostRecovered"  # alive: end the event, fence nothing
    CONFIRMED = "Confirmed"  # off: go on with the recovery
    FENCE = "Fence"  # send a fencing request now
    WAIT = "Wait"  # read the evidence again soon
    GIVE_UP = "HostNotConfirmedDown"  # never evacuated: end the event


@dataclass(frozen=True)
class Judgement:
    action: Action
    message: str


def confirmed_down(state: ClusterState, node: str, not_before: datetime | None) -> tuple[bool, str]:
    """True only when Pacemaker, with quorum, shows the node offline and a successful fencing
    of it completed at or after `not_before` (when it last came online)."""
    if not state.has_quorum:
        return False, "the Pacemaker partition answering has no quorum"
    found = state.node(node)
    if found is None:
        return False, f"Pacemaker has no node {node}"
    if found.online and not found.unclean:
        return False, f"Pacemaker reports {node} online"
    if found.unclean:
        return False, f"{node} is unclean: lost and not fenced yet"
    # crm_mon gives completion times in whole seconds: a fencing completed in the second the
    # bound falls in shows as before it, and must count.
    bound = not_before.replace(microsecond=0) if not_before is not None else None
    fenced = sorted(
        (event.completed, event.action)
        for event in state.fencing_of(node)
        if event.succeeded
        and event.completed is not None
        and (bound is None or event.completed >= bound)
    )
    if fenced:
        completed, action = fenced[-1]
        return True, f"{node} offline and fenced ({action} at {completed.isoformat()})"
    if not state.stonith_enabled:
        return False, f"{node} offline but fencing is disabled: cannot be sure it is off"
    return False, f"{node} offline with no fencing of it since it last came online"


def judge(
    report: Report,
    node: str,
    segment: FailoverSegmentSpec,
    evidence: Evidence,
    record: FencingRecord,
    now: datetime,
) -> Judgement:
    """What to do next about a reported host failure whose host is not yet confirmed off."""
    generated = report.spec.generated_time
    if evidence.heartbeat is not None and evidence.heartbeat > generated + HEARTBEAT_SKEW:
        return Judgement(
            Action.RECOVERED,
            f"nova-compute on {report.spec.host} reported at {evidence.heartbeat.isoformat()}, "
            "after the failure",
        )
    policy = segment.fencing
    method = policy.method
    can_request = evidence.device
    if method == FencingMethod.NONE:
        if report.spec.payload.host_status == "NORMAL":
            return Judgement(Action.CONFIRMED, "taken on its monitor's word (fencing.method: none)")
        why = "its monitor did not confirm it down, and with fencing.method none nothing can"
        can_request = False
    elif method == FencingMethod.PACEMAKER:
        state = evidence.cluster
        if state is None:
            # Unread, the cluster might show the node up: nothing is asked of it blind.
            why, can_request = evidence.unavailable, False
        else:
            found = state.node(node)
            if state.has_quorum and found is not None and found.is_up:
                if evidence.returned:
                    return Judgement(Action.RECOVERED, f"Pacemaker reports {node} online again")
                # Reported before the cluster lost it, or a false report: never fence a node
                # the cluster shows up; a live one shows in Nova's heartbeat soon.
                return _wait_or_give_up(
                    f"Pacemaker still shows {node} up: waiting for the cluster to lose it",
                    segment,
                    record,
                    now,
                )
            oldest = report.created - FENCING_RECORD_MAX_AGE
            since = evidence.online_since
            down, why = confirmed_down(state, node, max(since, oldest) if since else oldest)
            if down:
                return Judgement(Action.CONFIRMED, why)
            # Only a quorate partition that knows the node can fence it, and a fencing already
            # under way (the cluster's own, of a node it lost) is waited for: a second request
            # would run after it, not with it.
            underway = any(e.status == FenceStatus.PENDING for e in state.fencing_of(node))
            if underway:
                why = f"Pacemaker is fencing {node} already"
            can_request = can_request and state.has_quorum and found is not None and not underway
    elif evidence.power == PowerState.OFF:
        return Judgement(Action.CONFIRMED, f"its BMC reports PowerState Off ({method})")
    elif evidence.power == PowerState.ON:
        why = f"its BMC reports PowerState On ({method})"
    else:
        why = evidence.unavailable
    if record.last_error:
        why += f"; the last fencing request failed: {record.last_error}"
    if evidence.nova_unreadable:
        # Never fence on the reporter's word alone while Nova cannot say the host is silent.
        can_request = False
        why += f"; {evidence.nova_unreadable}"
    timeout = timedelta(seconds=segment.host_failure.fencing_timeout_seconds)
    waited = now - record.started_time
    attempt = timedelta(seconds=policy.attempt_timeout_seconds)
    if record.last_error:
        attempt = min(attempt, RETRY_FAILED_REQUEST)
    last = record.last_request_time
    request_pending = last is not None and now - last < attempt
    spent = record.requests >= policy.attempts and not request_pending
    if waited >= timeout or (can_request and spent):
        return Judgement(
            Action.GIVE_UP,
            f"not confirmed off after {waited.total_seconds():.0f}s and "
            f"{record.requests} fencing request(s): {why}",
        )
    if can_request and not request_pending:
        return Judgement(Action.FENCE, why)
    return Judgement(Action.WAIT, why)


def unconfirmed_report(
    report: Report, segment: FailoverSegmentSpec, heartbeat: datetime | None, now: datetime
) -> Decision | None:
    """With fencing.method none the reporter's word is all there is, so a report it did not
    confirm (host_status other than NORMAL) is not admitted: it waits as New, where a
    confirmed report of the same failure takes over from it, and ends HostNotConfirmedDown
    after the fencing timeout. None: nothing against admitting it."""
    if segment.fencing.method != FencingMethod.NONE:
        return None
    record = FencingRecord(method=FencingMethod.NONE, started_time=report.created)
    evidence = Evidence(heartbeat=heartbeat, device=False)
    judgement = judge(report, report.spec.host, segment, evidence, record, now)
    if judgement.action == Action.CONFIRMED:
        return None
    if judgement.action == Action.WAIT:
        return Decision(Verdict.WAIT, "AwaitingFencing", judgement.message)
    return Decision(Verdict.IGNORE, judgement.action.value, judgement.message)


def _wait_or_give_up(
    why: str, segment: FailoverSegmentSpec, record: FencingRecord, now: datetime
) -> Judgement:
    waited = now - record.started_time
    if waited >= timedelta(seconds=segment.host_failure.fencing_timeout_seconds):
        return Judgement(
            Action.GIVE_UP,
            f"not confirmed off after {waited.total_seconds():.0f}s and "
            f"{record.requests} fencing request(s): {why}",
        )
    return Judgement(Action.WAIT, why)


@dataclass
class FenceHost:
    """The fencing step of one host failure: the host confirmed off and the proof recorded, or
    the outcome that ends the event."""

    report: Report
    namespace: str
    host: HostRecord
    segment: FailoverSegmentSpec
    cloud: Cloud
    progress: Progress
    clock: Callable[[], datetime]
    timing: Timing
    _seen_down: bool = False
    # The host's compute service as the last evidence read it (None: not read, or no such
    # service): the recovery takes it out of Nova moments later.
    service: ComputeService | None = None

    async def run(self) -> Outcome | None:
        """None once the host is confirmed off. Confirmed by an earlier attempt of this event,
        it is not fenced again, but a host that came back since (rebooted by its fencing,
        powered on by a person) is left alone: its instances may run there again."""
        if self.progress.done(FENCE):
            # Confirmed off by this event: the node up now can only have come back.
            evidence = replace(await self._evidence(), returned=True)
            if evidence.nova_unreadable is not None:
                return Outcome.error("NovaUnavailable", evidence.nova_unreadable)
            done = self.progress.status.fencing or FencingRecord(
                method=self.segment.fencing.method, started_time=self.clock()
            )
            again = judge(
                self.report, self.host.pacemaker_node, self.segment, evidence, done, self.clock()
            )
            if again.action == Action.RECOVERED:
                return Outcome.ignored("HostRecovered", again.message)
            return None
        method = self.segment.fencing.method
        status = self.progress.status
        if status.fencing is None or status.fencing.confirmed_time is not None:
            status.fencing = FencingRecord(method=method, started_time=self.clock())
        record = status.fencing
        # Not written on its own: a request is written ahead when one is sent, a confirmation
        # goes out with the next step's write-ahead, an ending with the event's last write.
        await self.progress.begin(
            FENCE, f"confirming {self.host.name} is off ({method})", persist=False
        )
        told = ""
        poll = FIRST_POLL
        # The decision runs on the wall clock, which survives a restart; this bounds the loop
        # on the monotonic one as well, should the wall clock jump back.
        policy = self.segment.fencing
        budget = self.segment.host_failure.fencing_timeout_seconds + policy.attempt_timeout_seconds
        deadline = self.timing.clock() + budget
        while True:
            evidence = await self._evidence()
            judgement = judge(
                self.report, self.host.pacemaker_node, self.segment, evidence, record, self.clock()
            )
            action, message = judgement.action, judgement.message
            if action == Action.RECOVERED:
                await self.progress.end(FENCE, StepState.SKIPPED, message, persist=False)
                return Outcome.ignored("HostRecovered", message)
            if action == Action.GIVE_UP:
                await self.progress.end(FENCE, StepState.FAILURE, message, persist=False)
                return Outcome.ignored("HostNotConfirmedDown", message)
            if action == Action.CONFIRMED:
                record.confirmed_time, record.proof = self.clock(), message[:1024]
                fenced = record.requests > 0
                await self.progress.end(
                    FENCE,
                    StepState.SUCCESS if fenced else StepState.SKIPPED,
                    message if fenced else f"already off: {message}",
                    persist=False,
                )
                return None
            if action == Action.FENCE:
                await self._request(record, message)
                poll = FIRST_POLL
                continue
            if message != told:
                self.progress.note(FENCE, f"waiting: {message}")
                await self.progress.save()
                told = message
            if self.timing.clock() >= deadline:
                message = f"not confirmed off after {budget}s: {message}"
                await self.progress.end(FENCE, StepState.FAILURE, message, persist=False)
                return Outcome.ignored("HostNotConfirmedDown", message)
            await self.timing.sleep(min(poll, self._until_next_decision(record)))
            poll = min(poll * 2, LAST_POLL)

    def _until_next_decision(self, record: FencingRecord) -> float:
        """Seconds until the fencing timeout or the next request is due, whichever is first,
        so a poll never sleeps past either."""
        now = self.clock()
        due = [
            record.started_time
            + timedelta(seconds=self.segment.host_failure.fencing_timeout_seconds)
        ]
        if record.last_request_time is not None:
            attempt = timedelta(seconds=self.segment.fencing.attempt_timeout_seconds)
            due.append(record.last_request_time + attempt)
        return max(0.0, min((when - now).total_seconds() for when in due))

    async def _request(self, record: FencingRecord, why: str) -> None:
        record.requests += 1
        record.last_request_time = self.clock()
        attempts = self.segment.fencing.attempts
        self.progress.note(FENCE, f"fencing request {record.requests}/{attempts} ({why})")
        await self.progress.save()  # counted before it goes out: a restart waits on it
        method = self.segment.fencing.method
        timeout = float(self.segment.fencing.attempt_timeout_seconds)
        try:
            if method == FencingMethod.PACEMAKER and self.cloud.cluster is not None:
                await self.cloud.cluster.fence(self.host.pacemaker_node, timeout)
            elif self.cloud.power is not None and self.host.spec.bmc is not None:
                await self.cloud.power.power_off(self.namespace, method, self.host.spec.bmc)
            record.last_error = None
        except (PacemakerError, BMCError) as error:
            record.last_error = str(error)[:1024]
            self.progress.note(FENCE, f"fencing request {record.requests} failed: {error}")
            await self.progress.save()

    async def _evidence(self) -> Evidence:
        pacemaker = self.host.status.pacemaker
        online_since = pacemaker.online_since if pacemaker else None
        evidence = Evidence(
            online_since=online_since,
            returned=self._seen_down
            or (online_since is not None and online_since > self.report.created),
        )
        self.service = None
        try:
            self.service = await self.cloud.nova.compute_service(self.host.nova_host)
            evidence = replace(evidence, heartbeat=self.service.updated_at)
        except NotFound:
            pass
        except NovaError as error:
            why = f"Nova could not be read to tell whether the host is alive: {error}"
            evidence = replace(evidence, nova_unreadable=why)
        method = self.segment.fencing.method
        if method == FencingMethod.PACEMAKER:
            if self.cloud.cluster is None:
                return replace(evidence, device=False)
            try:
                cluster = await self.cloud.cluster.state()
            except Exception as error:  # any driver failure means "not confirmed"
                return replace(evidence, unavailable=f"Pacemaker could not be read: {error}")
            found = cluster.node(self.host.pacemaker_node)
            if cluster.has_quorum and found is not None and found.is_down:
                self._seen_down = True  # up again later means it came back
            return replace(evidence, cluster=cluster)
        if method == FencingMethod.NONE:
            return replace(evidence, device=False)
        bmc = self.host.spec.bmc
        if bmc is None:
            why = f"Host {self.host.name} has no spec.bmc"
            return replace(evidence, unavailable=why, device=False)
        if self.cloud.power is None:
            return replace(evidence, unavailable="no BMC access for this cloud", device=False)
        try:
            power = await self.cloud.power.power_state(self.namespace, method, bmc)
        except BMCError as error:
            return replace(evidence, unavailable=f"{error.reason}: {error}")
        return replace(evidence, power=power)
