#!/usr/bin/env bash
# bench/pipeline.sh - time `repro` of a 20-stage pipeline over 20,000 dependency
# files: mlver vs DVC, same data, same run, interleaved repetitions, plus floors.
#
# usage: bench/pipeline.sh [REPS] [SHAPE]  (defaults: 3 tree)
#   SHAPE tree     the 20-stage binary tree below (scenario `pipeline`)
#   SHAPE foreach  200 stages from ONE `foreach` (scenario `pipeline_foreach`, below)
#
# Raw lines (stdout and $OUT), the format of bench/run.sh:
#     TOOL pipeline STEP SECONDS PEAK_RSS_MB
#
# The pipeline (generated, seeded): data/d00..d19, each FILES/STAGES small files
# (200..2000 bytes); stage sK runs `PYTHON stage.py data/dK out/sK.json
# [out/s(2K+1).json out/s(2K+2).json]` and depends on stage.py, data/dK and the
# outputs of its two children in a binary tree (s0 is the root, fan-in of
# everything).  data/ is a plain dependency (ignored by Git, not `add`ed).
#
# Per tool, once per run (untimed, except `populate`): git init, `stage add` x20,
# git commit, then `populate` = the first `repro` (hashes 20,000 files, runs 20
# stages; timed, one sample per run).  Then every repetition, tools interleaved:
#   noop       `repro`, nothing changed
#   (untimed)  one file of data/d00 rewritten (new seeded content, rename)
#   dry        the decision: `mlver repro --dry-run` / `dvc repro --dry`
#   status     `mlver status` / `dvc status` (the same decision, other command)
#   repro_one  `repro`: runs stage s0 only (the root: nothing downstream)
# After repro_one a note says how many outputs were rewritten (want 1) and
# whether out/s00.json equals a direct run of the stage command.
#
# Floors (TOOL=floor, every repetition): statwalk_find / statwalk_py over the
# 20,000 dependency files, stage_cmd (one stage's command run by hand),
# py_start (`PYTHON -c pass`).  PYTHON is $STAGE_PYTHON, default the absolute
# path of python3 (so a pyenv shim's start-up is not counted 20 times).
#
# SHAPE foreach: data/i000..i199 (FILES/STAGES files each, STAGES default 200);
# params.yaml holds `items: {i000: {k: 1}, ...}` and the pipeline file (the same
# text as mlver.yaml and dvc.yaml, written directly, no `stage add`) is one stage
#   s: {foreach: ${items}, do: {cmd: PYTHON stage.py data/${key} out/${key}.json
#       --k ${item.k}, deps: [stage.py, data/${key}], outs: [out/${key}.json]}}
# giving s@i000..s@i199.  Steps: populate, noop, status (nothing changed), then
# (untimed) one item's k changed in params.yaml and repro_param = `repro`: only
# that item's stage runs (a note counts the rewritten outputs, want 1, and checks
# that output against a direct run).  mlver also gets an untimed in-process
# timing of parse_pipeline (parsing + templating of the 200 stages), note `parse`.
#
# environment: MLVER, DVC, TOOLS, FLOORS, BENCH_SCRATCH, BENCH_DATA, STEP_TIMEOUT,
# PYTHON, OUT, KEEP as in bench/run.sh, and
#   FILES   dependency files in total (default 20000)
#   STAGES  stages = data folders (default 20)
set -uo pipefail

REPS=${1:-3}
SHAPE=${2:-tree}
case "$SHAPE" in
  tree) SCEN=pipeline; DEFSTAGES=20 ;;
  foreach) SCEN=pipeline_foreach; DEFSTAGES=200 ;;
  *) echo "usage: bench/pipeline.sh [REPS] [tree|foreach]" >&2; exit 2 ;;
esac
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"   # settings, emit, the isolated environment, timed
FILES=${FILES:-20000}
STAGES=${STAGES:-$DEFSTAGES}
DATA=${BENCH_DATA:-$SCRATCH/data}/pipe-$FILES-$STAGES
[ "$SHAPE" = foreach ] && DATA=${BENCH_DATA:-$SCRATCH/data}/pipe-foreach-$FILES-$STAGES
mkdir -p "$HERE/results" "$SCRATCH"
OUT=${OUT:-$HERE/results/raw-pipeline-$(date -u +%Y%m%dT%H%M%SZ).txt}
OUT=$(realpath -m "$OUT")
mkdir -p "$(dirname "$OUT")" && : >>"$OUT"


# --- the data and the stage script (seeded, generated once) ---------------------
if [ ! -f "$DATA/.done" ]; then
  rm -rf "$DATA"
  "$PY" - "$DATA" "$FILES" "$STAGES" "$SHAPE" <<'EOF' || { echo "data generation failed" >&2; exit 2; }
import os, random, sys
out, files, stages, shape = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
per = files // stages
for d in range(stages):
    dd = os.path.join(out, "data", f"d{d:02d}" if shape == "tree" else f"i{d:03d}")
    os.makedirs(dd)
    for i in range(per):
        rng = random.Random(f"pipe-{d}-{i}")
        with open(os.path.join(dd, f"f{i:05d}.txt"), "wb") as f:
            f.write(rng.randbytes(rng.randint(200, 2000)))
open(os.path.join(out, ".done"), "w").close()
print(f"pipeline data: {stages} folders x {per} files in {out}", file=sys.stderr)
EOF
fi
STAGE_PY='import hashlib, json, os, sys
inp, out, extra = sys.argv[1], sys.argv[2], sys.argv[3:]
k = None
if extra[:1] == ["--k"]:
    k, extra = extra[1], extra[2:]
h = hashlib.sha256()
n = total = 0
for root, dirs, files in os.walk(inp):
    dirs.sort()
    for name in sorted(files):
        p = os.path.join(root, name)
        with open(p, "rb") as f:
            b = f.read()
        h.update(os.path.relpath(p, inp).encode() + b"\0" + b)
        n += 1
        total += len(b)
for e in extra:
    with open(e, "rb") as f:
        h.update(f.read())
os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
with open(out, "w") as f:
    json.dump({"files": n, "bytes": total, "digest": h.hexdigest()} if k is None else
              {"files": n, "bytes": total, "digest": h.hexdigest(), "k": k}, f)
'
# foreach shape: params.yaml and the pipeline file (the same text for both tools)
write_foreach() {   # write_foreach PIPELINE_FILE
  "$PY" - "$1" "$STAGES" "$SPY" <<'EOF'
import sys
path, n, spy = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open("params.yaml", "w") as f:
    f.write("items:\n" + "".join(f"  i{i:03d}:\n    k: {i + 1}\n" for i in range(n)))
with open(path, "w") as f:
    f.write(f"""stages:
  s:
    foreach: ${{items}}
    do:
      cmd: {spy} stage.py data/${{key}} out/${{key}}.json --k ${{item.k}}
      deps:
      - stage.py
      - data/${{key}}
      outs:
      - out/${{key}}.json
""")
EOF
}

# stage K: "deps... | cmd" pieces
stage_deps() {   # stage_deps K -> extra deps (children outputs), space separated
  local k=$1 c r=""
  for c in $((2 * k + 1)) $((2 * k + 2)); do
    [ $c -lt "$STAGES" ] && r+=" out/s$(printf %02d $c).json"
  done
  echo "$r"
}

# lib.sh exports PYTHONDONTWRITEBYTECODE: byte-compile mlver once (untimed), as an
# installed package would be (else every call compiles its modules again)
"$PY" -c 'import compileall, os, mlver; compileall.compile_dir(os.path.dirname(mlver.__file__), quiet=1)' 2>/dev/null

RUN=$(mktemp -d "$SCRATCH/pipeline.XXXXXX")
trap '[ "${KEEP:-0}" = 1 ] || rm -rf "$RUN"' EXIT

# --- per tool, once: repo + stages + populate -----------------------------------
setup_tool() (
  local tool=$1 tag="$1 $SCEN" R=$RUN/$1/repo LOG=$RUN/$1/log X k kk ex cmd deps
  export HOME=$RUN/$1/home DVC_SITE_CACHE_DIR=$RUN/$1/dvc-site-cache
  mkdir -p "$HOME" "$R"
  git config --global init.defaultBranch main
  case "$tool" in mlver) X=$MLVER ;; dvc) X=$DVC ;; *) emit "# $tag unknown tool"; return 1 ;; esac
  local ver
  if ! ver=$(bash -c "$X --version" 2>&1); then
    emit "# $tag '$X --version' failed: $(echo "$ver" | tail -n1)"; return 1
  fi
  emit "# $tag version $tool $(echo "$ver" | tail -n1) | $(git --version) | fs $(stat -f -c %T "$RUN")"
  cd "$R" && git init -q
  cp -a "$DATA/data" data
  printf '%s' "$STAGE_PY" >stage.py
  echo /data/ >.gitignore
  {
    if [ "$tool" = mlver ]; then $X -q init; else $X init -q; fi
    git add -A && git commit -qm init
  } >>"$LOG" 2>&1 || { emit "# $tag init failed"; tail -n 5 "$LOG" | sed 's/^/#   /' | tee -a "$OUT"; return 1; }
  if [ "$SHAPE" = foreach ]; then
    if [ "$tool" = mlver ]; then write_foreach mlver.yaml; else write_foreach dvc.yaml; fi
  fi
  for ((k = 0; k < STAGES; k++)); do
    [ "$SHAPE" = foreach ] && break
    kk=$(printf %02d $k); ex=$(stage_deps $k)
    cmd="$SPY stage.py data/d$kk out/s$kk.json$ex"
    deps="-d stage.py -d data/d$kk"; for d in $ex; do deps+=" -d $d"; done
    if [ "$tool" = mlver ]; then
      bash -c "$X -q stage add -n s$kk $deps -o out/s$kk.json -- $cmd"
    else
      bash -c "$X stage add -q -n s$kk $deps -o out/s$kk.json '$cmd'"
    fi >>"$LOG" 2>&1 || { emit "# $tag stage add s$kk failed"; tail -n 5 "$LOG" | sed 's/^/#   /' | tee -a "$OUT"; return 1; }
  done
  git add -A >>"$LOG" 2>&1 && git commit -qm stages >>"$LOG" 2>&1
  local REPRO
  if [ "$tool" = mlver ]; then REPRO="$X -q repro"; else REPRO="$X repro -q"; fi
  timed populate "$tag" "$LOG" "$REPRO" || return 1
  git add -A >>"$LOG" 2>&1 && git commit -qm populated >>"$LOG" 2>&1
  local n; n=$(ls out/*.json 2>/dev/null | wc -l)
  emit "# $tag populated: $n/$STAGES outputs"
  [ "$n" = "$STAGES" ] || return 1
  if [ "$SHAPE" = foreach ] && [ "$tool" = mlver ]; then
    # untimed: parsing + templating of the pipeline file in one process (median of 5)
    emit "# $tag parse: $("$PY" - <<'EOF' 2>&1 | tail -n1
import statistics, time
import yaml
from mlver.pipeline.model import parse_pipeline
text = open("mlver.yaml").read()
def load(rel):
    try:
        with open(rel) as f:
            return yaml.safe_load(f)
    except FileNotFoundError:
        return None
ts = []
for _ in range(5):
    t0 = time.perf_counter(); p = parse_pipeline(text, "mlver.yaml", load); ts.append(time.perf_counter() - t0)
print(f"parse_pipeline {len(p.stages)} stages: median {statistics.median(ts):.4f} s (min {min(ts):.4f}, max {max(ts):.4f}, n 5, in-process, params.yaml read by yaml.safe_load inside the timing)")
EOF
)"
  fi
  return 0
)

# --- per tool, every repetition --------------------------------------------------
rep_tool() (
  local tool=$1 r=$2 tag="$1 $SCEN" R=$RUN/$1/repo LOG=$RUN/$1/log X
  export HOME=$RUN/$1/home DVC_SITE_CACHE_DIR=$RUN/$1/dvc-site-cache
  cd "$R" || return
  local NOOP DRY STATUS
  if [ "$tool" = mlver ]; then
    X=$MLVER; NOOP="$X -q repro"; DRY="$X repro --dry-run"; STATUS="$X status"
  else
    X=$DVC; NOOP="$X repro -q"; DRY="$X repro --dry"; STATUS="$X status"
  fi
  timed noop "$tag" "$LOG" "$NOOP"
  if [ "$SHAPE" = foreach ]; then rep_foreach; return 0; fi
  # untimed: rewrite one file of data/d00 (seeded by the repetition), via a rename
  "$PY" - data/d00 "$r" <<'EOF' >>"$LOG" 2>&1
import os, random, sys
d, r = sys.argv[1], int(sys.argv[2])
names = sorted(os.listdir(d))
name = names[(r * 7919) % len(names)]
rng = random.Random(f"pipe-mod-{r}")
tmp = os.path.join(d, ".tmp-mod")
with open(tmp, "wb") as f:
    f.write(rng.randbytes(rng.randint(200, 2000)))
os.replace(tmp, os.path.join(d, name))
print("modified", os.path.join(d, name))
EOF
  timed dry "$tag" "$LOG" "$DRY"
  timed status "$tag" "$LOG" "$STATUS"
  local before after changed
  before=$(stat -c '%n %.9Y %i' out/*.json 2>/dev/null)
  if timed repro_one "$tag" "$LOG" "$NOOP"; then
    after=$(stat -c '%n %.9Y %i' out/*.json 2>/dev/null)
    changed=$(diff <(echo "$before") <(echo "$after") | grep -c '^>')
    "$SPY" stage.py data/d00 "$RUN/$tool/expect.json" $(stage_deps 0) 2>>"$LOG"
    if cmp -s out/s00.json "$RUN/$tool/expect.json"; then
      emit "# $tag rep $r $([ "$changed" = 1 ] || echo "WARNING ")repro_one rewrote $changed output(s) (want 1); out/s00.json verify ok"
    else
      emit "# $tag rep $r repro_one rewrote $changed output(s) (want 1); VERIFY FAILED out/s00.json differs from a direct run"
    fi
  fi
  return 0
)

rep_foreach() {   # in rep_tool's subshell: status, then one item's param changed
  timed status "$tag" "$LOG" "$STATUS"
  local item before after changed
  item=$(printf 'i%03d' $(((r * 37) % STAGES)))
  "$PY" - "$item" "$((1000 + r))" <<'EOF' >>"$LOG" 2>&1
import os, re, sys
item, k = sys.argv[1], sys.argv[2]
t = open("params.yaml").read()
t2 = re.sub(rf"(?m)^(  {item}:\n    k: ).*$", rf"\g<1>{k}", t)
assert t2 != t
with open("params.yaml.tmp", "w") as f:
    f.write(t2)
os.replace("params.yaml.tmp", "params.yaml")
print("params.yaml: items." + item + ".k =", k)
EOF
  before=$(stat -c '%n %.9Y %i' out/*.json 2>/dev/null)
  if timed repro_param "$tag" "$LOG" "$NOOP"; then
    after=$(stat -c '%n %.9Y %i' out/*.json 2>/dev/null)
    changed=$(diff <(echo "$before") <(echo "$after") | grep -c '^>')
    "$SPY" stage.py "data/$item" "$RUN/$tool/expect.json" --k "$((1000 + r))" 2>>"$LOG"
    if cmp -s "out/$item.json" "$RUN/$tool/expect.json"; then
      emit "# $tag rep $r $([ "$changed" = 1 ] || echo "WARNING ")repro_param (items.$item.k) rewrote $changed output(s) (want 1); out/$item.json verify ok"
    else
      emit "# $tag rep $r repro_param (items.$item.k) rewrote $changed output(s) (want 1); VERIFY FAILED out/$item.json differs from a direct run"
    fi
  fi
}

# --- floors -----------------------------------------------------------------------
FLOG=$RUN/floor.log
printf '%s' "$STAGE_PY" >"$RUN/stage.py"
run_floors() {
  find "$DATA/data" -type f -print0 | xargs -0 cat >/dev/null   # warm
  timed statwalk_find "floor $SCEN" "$FLOG" "find $DATA/data -type f -printf '%s\n' >/dev/null"
  timed statwalk_py "floor $SCEN" "$FLOG" "$PY $HERE/hashfloor.py statwalk 0 $DATA/data >/dev/null"
  local d0=data/d00; [ "$SHAPE" = foreach ] && d0=data/i000
  timed stage_cmd "floor $SCEN" "$FLOG" "cd $DATA && $SPY $RUN/stage.py $d0 $RUN/floor-out.json"
  timed py_start "floor $SCEN" "$FLOG" "$SPY -c pass"
}

# --- main ---------------------------------------------------------------------------
emit "# bench/pipeline.sh $(date -u +%FT%TZ) reps=$REPS shape=$SHAPE files=$FILES stages=$STAGES tools=\"$TOOLS\" host=$(uname -n) cpus=$(nproc) kernel=$(uname -r) python=$("$PY" -V 2>&1 | cut -d' ' -f2) fs=$(stat -f -c %T "$SCRATCH")"
emit "# mlver='$MLVER' dvc='$DVC' stage python='$SPY' decision: mlver repro --dry-run vs dvc repro --dry; status: mlver status vs dvc status"
read -r -a TOOLARR <<<"$TOOLS"
OK=()
for t in "${TOOLARR[@]}"; do
  emit "# setup $t start $(date -u +%T)"
  if setup_tool "$t"; then OK+=("$t"); else
    emit "# $t $SCEN setup failed: every step FAIL"
    steps="populate noop dry status repro_one"; [ "$SHAPE" = foreach ] && steps="populate noop status repro_param"
    for s in $steps; do emit "$t $SCEN $s FAIL -"; done
  fi
done
for ((r = 1; r <= REPS; r++)); do
  if ((r % 2)); then order=("${OK[@]}"); else order=(); for ((i = ${#OK[@]} - 1; i >= 0; i--)); do order+=("${OK[i]}"); done; fi
  for t in "${order[@]}"; do
    emit "# rep $r $t $SCEN start $(date -u +%T)"
    rep_tool "$t" "$r"
  done
  [ "${FLOORS:-1}" = 1 ] && { emit "# rep $r floor $SCEN start $(date -u +%T)"; run_floors; }
done
emit "# bench/pipeline.sh done $(date -u +%FT%TZ)"
echo "raw lines: $OUT   summary: $PY $HERE/summarize.py $OUT" >&2
