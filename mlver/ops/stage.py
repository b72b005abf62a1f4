"""``mlver stage add`` (write a stage into ``mlver.yaml``, keeping what is there, comments
included) and ``mlver dag`` (the stage graph)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

from mlver import git
from mlver.errors import MlverError, UsageError
from mlver.fsutil import atomic_write_text
from mlver.ops.common import with_untracked_pipeline
from mlver.pipeline.graph import build_graph
from mlver.pipeline.model import PIPELINE_FILE, Artifact, Stage
from mlver.pipeline.params import workspace_reader
from mlver.pipeline.plan import check_workspace_paths, load_graph, parse_pipelines, pipeline_texts
from mlver.pipeline.record import refuse_git_tracked
from mlver.pipeline.yamlio import LinedMap, load_lined
from mlver.pointer import yaml_scalar
from mlver.repo import Repo
from mlver.workspace import has_pipeline, pointer_files


@dataclass
class StageAdded:
    name: str
    file: str
    created: bool  # mlver.yaml did not exist before
    replaced: bool = False  # a stage of that name was there (``-f``)
    to_add: tuple[str, ...] = ()  # mlver.yaml when Git does not track it yet (to `git add`)


def _param_entries(params: Sequence[str]) -> list[str | tuple[str, list[str]]]:
    """``-p`` values: ``KEY[,KEY]`` (params.yaml) or ``FILE:KEY[,KEY]`` / ``FILE:`` (all)."""
    plain: list[str | tuple[str, list[str]]] = []
    named: dict[str, list[str]] = {}
    for p in params:
        if ":" in p:
            file, _, keys = p.rpartition(":")
            named.setdefault(file, []).extend(k for k in keys.split(",") if k)
        else:
            plain.extend(k for k in p.split(",") if k)
    return plain + [(f, k) for f, k in named.items()]


def stage_block(name: str, cmd: str, *, deps: Sequence[str], outs: Sequence[str], outs_no_cache: Sequence[str],
                params: Sequence[str], metrics: Sequence[str], wdir: str | None, desc: str | None,
                indent: int = 2) -> str:
    a, b = " " * indent, " " * (indent * 2)
    lines = [f"{a}{yaml_scalar(name)}:", f"{b}cmd: {yaml_scalar(cmd)}"]
    if wdir and wdir != ".":
        lines.append(f"{b}wdir: {yaml_scalar(wdir)}")
    if desc:
        lines.append(f"{b}desc: {yaml_scalar(desc)}")
    if deps:
        lines += [f"{b}deps:"] + [f"{b}- {yaml_scalar(d)}" for d in deps]
    entries = _param_entries(params)
    if entries:
        lines.append(f"{b}params:")
        for e in entries:
            if isinstance(e, str):
                lines.append(f"{b}- {yaml_scalar(e)}")
            elif e[1]:
                lines += [f"{b}- {yaml_scalar(e[0])}:"] + [f"{b}  - {yaml_scalar(k)}" for k in e[1]]
            else:
                lines.append(f"{b}- {yaml_scalar(e[0])}:")
    if outs or outs_no_cache:
        lines.append(f"{b}outs:")
        lines += [f"{b}- {yaml_scalar(o)}" for o in outs]
        for o in outs_no_cache:
            lines += [f"{b}- {yaml_scalar(o)}:", f"{b}    cache: false"]
    if metrics:
        lines += [f"{b}metrics:"] + [f"{b}- {yaml_scalar(m)}" for m in metrics]
    return "\n".join(lines) + "\n"


def add_stage(repo: Repo, name: str, cmd: str, *, deps: Sequence[str] = (), outs: Sequence[str] = (),
              outs_no_cache: Sequence[str] = (), params: Sequence[str] = (), metrics: Sequence[str] = (),
              wdir: str | None = None, desc: str | None = None, force: bool = False) -> StageAdded:
    if not cmd.strip():
        raise UsageError("no command given", hint="put it after `--`: mlver stage add -n NAME -- python train.py")
    # the pipeline file of the current folder when it has one (as `dvc stage add`), else the top one
    here = os.path.relpath(os.getcwd(), repo.root).replace(os.sep, "/")
    base = here if here != "." and not here.startswith("../") and os.path.isfile(PIPELINE_FILE) else "."
    file = PIPELINE_FILE if base == "." else f"{base}/{PIPELINE_FILE}"
    path = repo.abs(file)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        created = False
    except FileNotFoundError:
        text, created = "", True
    doc = load_lined(text, file, kind="pipeline") if text.strip() else None
    if wdir is not None:
        wdir = os.path.relpath(os.path.abspath(wdir), repo.abs(base)).replace(os.sep, "/")
    stages = doc.get("stages") if isinstance(doc, LinedMap) else None
    replacing = isinstance(stages, dict) and name in stages
    if replacing and not force:
        raise MlverError(f"stage '{name}' already exists in {file}",
                         hint="pick another name, or replace it with `mlver stage add -f`")
    kwargs = dict(deps=deps, outs=outs, outs_no_cache=outs_no_cache, params=params, metrics=metrics,
                  wdir=wdir, desc=desc)
    if text and not text.endswith("\n"):
        text += "\n"
    if replacing and isinstance(stages, LinedMap):
        indent = _indent_of(text, stages)
        new_text = _replace_block(text, stages, name, indent,
                                  stage_block(name, cmd, indent=indent, **kwargs))  # type: ignore[arg-type]
    elif isinstance(stages, LinedMap) and stages:
        indent = _indent_of(text, stages)
        new_text = _append_block(text, stages, indent,
                                 stage_block(name, cmd, indent=indent, **kwargs))  # type: ignore[arg-type]
    elif isinstance(doc, LinedMap) and "stages" in doc:
        if stages:  # pragma: no cover - a non-mapping is rejected by the parser below
            raise MlverError(f"{file}: 'stages' must be a mapping")
        lines = text.splitlines(keepends=True)
        lines[_line_of(doc, "stages") - 1] = "stages:\n"
        new_text = "".join(lines) + stage_block(name, cmd, **kwargs)  # type: ignore[arg-type]
    else:
        new_text = text + "stages:\n" + stage_block(name, cmd, **kwargs)  # type: ignore[arg-type]
    others = [(rel, t) for rel, t in (pipeline_texts(repo) if has_pipeline(repo) else []) if rel != file]
    pipeline = parse_pipelines([(file, new_text), *others] if file == PIPELINE_FILE else [*others, (file, new_text)],
                               workspace_reader(repo.root).doc)
    build_graph(pipeline)  # the new stage against every pipeline file: overlaps and cycles
    check_workspace_paths(repo, pipeline)
    added = pipeline.get(name if file == PIPELINE_FILE else f"{file}:{name}")
    assert added is not None
    _refuse_tracked_inside(repo, added)
    refuse_git_tracked(repo, added)
    atomic_write_text(path, new_text, fsync=repo.fsync, inside=repo.root)
    files = [] if file == PIPELINE_FILE else [file]  # the top file is added by with_untracked_pipeline
    if files and repo.scm_root is not None and git.tracked(repo.root, files):
        files = []
    return StageAdded(name, file, created, replacing, tuple(with_untracked_pipeline(repo, files)))


def _refuse_tracked_inside(repo: Repo, stage: Stage) -> None:
    """An output folder may not hold data tracked by a pointer file: running the stage
    would remove it, pointer and all."""
    pointers = pointer_files(repo) if stage.products else []
    for out in stage.products:
        inside = [p for p in pointers if p.startswith(out.path + "/")]
        if inside:
            raise MlverError(f"output '{out.path}' of stage '{stage.name}' holds the pointer file {inside[0]}",
                             hint=f"stop tracking it first (`mlver remove {inside[0]}`) or choose another output")


def _line_of(block: LinedMap, key: str) -> int:
    """The line of ``key`` in a parsed ``block``: every key the loader read has one."""
    line = block.line_of(key)
    assert line is not None
    return line


def _indent_of(text: str, stages: LinedMap) -> int:
    """The indentation of the stage names in block-style ``stages``."""
    first_line = text.splitlines()[_line_of(stages, next(iter(stages))) - 1]
    indent = len(first_line) - len(first_line.lstrip(" "))
    if indent == 0 or "{" in first_line[:indent + 1]:
        raise MlverError("the pipeline file writes 'stages' in flow style; add the stage by editing it")
    return indent


def _block_end(lines: list[str], stages: LinedMap, name: str, indent: int) -> int:
    """The index of the first line after stage ``name``'s lines: the next stage, or the
    next line indented no deeper than the stage names (a top-level key after ``stages``)."""
    start = _line_of(stages, name) - 1

    def outdented(line: str) -> bool:  # at the stage names' indentation, or less
        return len(line) - len(line.lstrip(" ")) <= indent

    names = list(stages)
    later = names[names.index(name) + 1:]
    if later:
        end = _line_of(stages, later[0]) - 1
    else:
        end = next((i for i in range(start + 1, len(lines))
                    if lines[i].strip() and not lines[i].lstrip().startswith("#") and outdented(lines[i])),
                   len(lines))
    # blank lines and comments written at the stage names' level just before the next
    # stage (or what follows) belong to it: keep them
    while end > start + 1 and (not lines[end - 1].strip()
                               or (lines[end - 1].lstrip().startswith("#") and outdented(lines[end - 1]))):
        end -= 1
    return end


def _replace_block(text: str, stages: LinedMap, name: str, indent: int, block: str) -> str:
    """``text`` with stage ``name``'s lines replaced by ``block``."""
    lines = text.splitlines(keepends=True)
    start, end = _line_of(stages, name) - 1, _block_end(lines, stages, name, indent)
    return "".join(lines[:start]) + block + "".join(lines[end:])


def _append_block(text: str, stages: LinedMap, indent: int, block: str) -> str:
    """``text`` with ``block`` after its last stage (before top-level keys that follow)."""
    lines = text.splitlines(keepends=True)
    end = _block_end(lines, stages, list(stages)[-1], indent)
    if end and not lines[end - 1].endswith("\n"):
        lines[end - 1] += "\n"
    return "".join(lines[:end]) + block + "".join(lines[end:])


# --- dag -------------------------------------------------------------------------------

@dataclass
class DagResult:
    stages: list[dict]  # {"name", "cmd", "deps", "outs"}
    edges: list[tuple[str, str]]

    def to_json(self) -> dict:
        return {"version": 1, "stages": self.stages, "edges": [list(e) for e in self.edges]}

    @property
    def roots(self) -> list[str]:
        targets = {b for _, b in self.edges}
        return [s["name"] for s in self.stages if s["name"] not in targets]

    def children(self, name: str) -> list[str]:
        return [b for a, b in self.edges if a == name]


def dag(repo: Repo, targets: list[str] | None = None) -> DagResult:
    """The stage graph; with ``targets``, the stages `repro TARGETS` considers (the
    targets and what they depend on, as `dvc dag TARGET` shows)."""
    from mlver.pipeline.run import select

    graph = load_graph(repo)
    chosen = {s.name for s in select(graph, targets, downstream=False)} if targets else None
    stages = [{"name": s.name, "cmd": s.cmd, "deps": [d.path for d in s.deps], "outs": [o.path for o in s.products]}
              for s in graph.stages_in_order() if chosen is None or s.name in chosen]
    edges = [e for e in graph.edges if chosen is None or (e[0] in chosen and e[1] in chosen)]
    return DagResult(stages, edges)


@dataclass(frozen=True)
class StageInfo:
    name: str
    desc: str | None
    cmd: str
    deps: tuple[str, ...]
    outs: tuple[str, ...]
    frozen: bool


def list_stages(repo: Repo) -> list[StageInfo]:
    """Every stage after templating (generated ``foreach``/``matrix`` stages by name)."""
    return [StageInfo(s.name, s.desc, s.cmd, tuple(d.path for d in s.deps), tuple(o.path for o in s.products),
                      s.frozen) for s in load_graph(repo).pipeline.stages]


def list_artifacts(repo: Repo) -> list[Artifact]:
    """The ``artifacts:`` of ``mlver.yaml`` (none without one)."""
    if not has_pipeline(repo):
        return []
    return list(load_graph(repo).pipeline.artifacts)
