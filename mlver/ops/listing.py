"""``mlver list``: every tracked output with its kind, size, file count and state."""

from __future__ import annotations

from dataclasses import dataclass

from mlver.hashing import digest_fields
from mlver.ops.common import all_outputs
from mlver.repo import Repo
from mlver.workspace import OutputState, output_state


@dataclass
class ListResult:
    outputs: list[OutputState]

    def to_json(self) -> dict:
        return {"version": 1, "outputs": [
            {"path": s.output.path, "kind": s.output.kind, **digest_fields(s.output.digest), "size": s.output.size,
             "files": s.output.files if s.output.kind == "dir" else 1, "state": s.state}
            for s in self.outputs]}


def list_outputs(repo: Repo) -> ListResult:
    result = ListResult([output_state(repo, o) for o in all_outputs(repo)])
    repo.state.flush()
    return result
