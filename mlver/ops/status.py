"""``mlver status``: how the workspace differs from the pointers and the lock."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlver.progress import NO_PROGRESS, Progress
from mlver.repo import Repo
from mlver.workspace import OutputState, output_state, select_outputs
from mlver.ops.common import all_outputs, pipeline_status, stages_named


@dataclass(frozen=True)
class StageState:
    name: str
    changed: bool
    reasons: tuple[str, ...]


@dataclass
class StatusResult:
    outputs: list[OutputState] = field(default_factory=list)  # every selected output
    stages: list[StageState] = field(default_factory=list)
    remote: dict | None = None

    @property
    def differing(self) -> list[OutputState]:
        return [o for o in self.outputs if o.state != "ok"]

    @property
    def clean(self) -> bool:
        return not self.differing and not any(s.changed for s in self.stages) and not (
            self.remote and (self.remote.get("missing") or self.remote.get("local_only")))

    def to_json(self) -> dict:
        doc: dict = {
            "version": 1,
            "clean": self.clean,
            "outputs": [
                {"path": o.output.path, "kind": o.output.kind, "state": o.state,
                 "files": [{"path": f.path, "state": f.state} for f in o.files]}
                for o in self.differing
            ],
            "stages": [{"name": s.name, "changed": s.changed, "reasons": list(s.reasons)} for s in self.stages],
        }
        if self.remote is not None:
            doc["remote"] = self.remote
        return doc


def status(repo: Repo, targets: list[str] | None = None, *, remote: str | None = None, cloud: bool = False,
           progress: Progress = NO_PROGRESS) -> StatusResult:
    """The workspace against pointers and lock; with ``remote`` (or ``cloud``: the default
    remote) also the cache against that remote."""
    result = _local_status(repo, targets, progress)
    if remote or cloud:
        # Not overlapped with the workspace's comparison on a thread: both are Python
        # holding the GIL, and the pair measured 6 % slower than one after the other.
        from mlver.ops.transfer import remote_status

        result.remote = remote_status(repo, remote, targets=targets, progress=progress)
    return result


def _local_status(repo: Repo, targets: list[str] | None, progress: Progress) -> StatusResult:
    outputs = all_outputs(repo)
    if targets:
        # a stage name selects that stage (and its recorded outputs), even one that has
        # no output yet: never run, or only metrics kept in Git
        named = stages_named(repo, targets)
        by_stage = {n for t in targets for n in named.get(t, [])}
        paths = [t for t in targets if t not in named]
        chosen = {o.path for o in select_outputs(repo, outputs, paths)} if paths else set()
        outputs = [o for o in outputs if o.path in chosen or o.stage in by_stage]
    result = StatusResult([output_state(repo, o, progress=progress) for o in outputs])
    result.stages = [StageState(n, c, tuple(r)) for n, c, r in pipeline_status(repo, targets)]
    repo.state.flush()
    return result
