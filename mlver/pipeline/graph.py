"""The stage graph. Stage B depends on stage A when one of B's dependencies is one of
A's outputs, lies inside one, or contains one. Outputs may not overlap (one path claimed
by two stages, or one inside another), and the graph may not have a cycle; both are
errors naming ``mlver.yaml``, the line and the stages.

Order: stdlib ``graphlib`` gives a topological order, taken one stage at a time: of the
stages whose upstream stages have all run, the one written first in ``mlver.yaml`` goes
next (``a; b <- a; c`` runs a, b, c, as DVC does), so the order is stable.
"""

from __future__ import annotations

import graphlib
from dataclasses import dataclass

from mlver.errors import FormatError
from mlver.pipeline.model import Out, Pipeline, Stage


def overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


@dataclass(frozen=True)
class Graph:
    pipeline: Pipeline
    upstream: dict[str, tuple[str, ...]]  # stage -> stages it depends on
    downstream: dict[str, tuple[str, ...]]
    order: tuple[str, ...]  # topological, ties broken by mlver.yaml order

    @property
    def edges(self) -> list[tuple[str, str]]:
        """(from, to) pairs in a stable order."""
        return [(u, s) for s in self.order for u in self.upstream[s]]

    def closure(self, names: list[str], *, down: bool, through_frozen: bool = True) -> set[str]:
        """``names`` and every stage downstream (``down``) or upstream of them. Without
        ``through_frozen`` a frozen stage is cut from its upstream stages, as in DVC (its
        dependencies are not reproduced for it, nor is it reached from them); the stages
        below it are still reached from it."""
        nxt = self.downstream if down else self.upstream
        frozen = set() if through_frozen else {s.name for s in self.pipeline.stages if s.frozen}
        seen: set[str] = set()
        todo = list(names)
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                if down:
                    todo.extend(m for m in nxt[n] if m not in frozen)
                elif n not in frozen:
                    todo.extend(nxt[n])
        return seen

    def stages_in_order(self, names: set[str] | None = None) -> list[Stage]:
        by_name = {s.name: s for s in self.pipeline.stages}
        return [by_name[n] for n in self.order if names is None or n in names]


def _check_overlaps(pipeline: Pipeline) -> None:
    claimed: list[tuple[Out, Stage]] = []
    for stage in pipeline.stages:
        for out in stage.products:
            for other, owner in claimed:
                if overlaps(out.path, other.path):
                    if out.path == other.path:
                        what = f"output '{out.path}' is also an output of stage '{owner.name}'"
                    elif out.path.startswith(other.path + "/"):
                        what = f"output '{out.path}' is inside output '{other.path}' of stage '{owner.name}'"
                    else:
                        what = f"output '{out.path}' contains output '{other.path}' of stage '{owner.name}'"
                    raise FormatError(pipeline.shown, f"stage '{stage.name}': {what}",
                                      line=out.line or stage.line, hint="each path may be produced by one stage only")
            claimed.append((out, stage))


def build_graph(pipeline: Pipeline) -> Graph:
    _check_overlaps(pipeline)
    producers: list[tuple[str, Stage]] = [(o.path, s) for s in pipeline.stages for o in s.products]
    upstream: dict[str, list[str]] = {s.name: [] for s in pipeline.stages}
    downstream: dict[str, list[str]] = {s.name: [] for s in pipeline.stages}
    for stage in pipeline.stages:
        for dep in stage.deps:
            for path, producer in producers:
                if not overlaps(dep.path, path):
                    continue
                if producer.name == stage.name:
                    raise FormatError(pipeline.shown, f"stage '{stage.name}': '{dep.path}' is both a dependency and "
                                      f"an output of the stage (a cycle)", line=dep.line or stage.line)
                if producer.name not in upstream[stage.name]:
                    upstream[stage.name].append(producer.name)
                    downstream[producer.name].append(stage.name)
    index = {s.name: i for i, s in enumerate(pipeline.stages)}
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for s in pipeline.stages:
        sorter.add(s.name, *upstream[s.name])
    try:
        sorter.prepare()
    except graphlib.CycleError as e:
        cycle = list(e.args[1])
        first = pipeline.get(min(cycle, key=lambda n: index[n]))
        raise FormatError(pipeline.shown, f"stages form a cycle: {' -> '.join(cycle)}",
                          line=first.line if first else None,
                          hint="a stage may not depend, directly or not, on its own outputs") from None
    # DVC's order: from each stage in file order, its upstream chain first (a depth-first
    # walk, dependencies in the order they are listed), then the stage: `d <- b, a, c,
    # b <- a, e` runs a, b, d, c, e
    order: list[str] = []
    seen: set[str] = set()
    for top in pipeline.stages:
        stack: list[tuple[str, int]] = [(top.name, 0)]
        while stack:
            name, i = stack.pop()
            if i == 0:
                if name in seen:
                    continue
                seen.add(name)
            ups = upstream[name]
            if i < len(ups):
                stack.append((name, i + 1))
                if ups[i] not in seen:
                    stack.append((ups[i], 0))
            else:
                order.append(name)
    return Graph(pipeline, {k: tuple(sorted(v, key=lambda n: index[n])) for k, v in upstream.items()},
                 {k: tuple(sorted(v, key=lambda n: index[n])) for k, v in downstream.items()}, tuple(order))
