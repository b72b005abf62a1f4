#!/usr/bin/env bash
# bench/pipeline.sh - time `repro` of a 20-stage pipeline over 20,000 dependency
# files: mlver vs DVC, same data, same run, interleaved repetitions, plus floors.
#
# usage: bench/pipeline.sh [REPS]          (default 3)
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
# environment: MLVER, DVC, TOOLS, FLOORS, BENCH_SCRATCH, BENCH_DATA, STEP_TIMEOUT,
# PYTHON, OUT, KEEP as in bench/run.sh, and
#   FILES   dependency files in total (default 20000)
#   STAGES  stages = data folders (default 20)
set -uo pipefail

REPS=${1:-3}
SCEN=pipeline
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"   # settings, emit, the isolated environment, timed
FILES=${FILES:-20000}
STAGES=${STAGES:-20}
DATA=${BENCH_DATA:-$SCRATCH/data}/pipe-$FILES-$STAGES
mkdir -p "$HERE/results" "$SCRATCH"
OUT=${OUT:-$HERE/results/raw-pipeline-$(date -u +%Y%m%dT%H%M%SZ).txt}
OUT=$(realpath -m "$OUT")
mkdir -p "$(dirname "$OUT")" && : >>"$OUT"


# --- the data and the stage script (seeded, generated once) ---------------------
if [ ! -f "$DATA/.done" ]; then
  rm -rf "$DATA"
  "$PY" - "$DATA" "$FILES" "$STAGES" <<'EOF' || { echo "data generation failed" >&2; exit 2; }
import os, random, sys
out, files, stages = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
per = files // stages
for d in range(stages):
    dd = os.path.join(out, "data", f"d{d:02d}")
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
    json.dump({"files": n, "bytes": total, "digest": h.hexdigest()}, f)
'

# stage K: "deps... | cmd" pieces
stage_deps() {   # stage_deps K -> extra deps (children outputs), space separated
  local k=$1 c r=""
  for c in $((2 * k + 1)) $((2 * k + 2)); do
    [ $c -lt "$STAGES" ] && r+=" out/s$(printf %02d $c).json"
  done
  echo "$r"
}

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
  for ((k = 0; k < STAGES; k++)); do
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

# --- floors -----------------------------------------------------------------------
FLOG=$RUN/floor.log
printf '%s' "$STAGE_PY" >"$RUN/stage.py"
run_floors() {
  find "$DATA/data" -type f -print0 | xargs -0 cat >/dev/null   # warm
  timed statwalk_find "floor $SCEN" "$FLOG" "find $DATA/data -type f -printf '%s\n' >/dev/null"
  timed statwalk_py "floor $SCEN" "$FLOG" "$PY $HERE/hashfloor.py statwalk 0 $DATA/data >/dev/null"
  timed stage_cmd "floor $SCEN" "$FLOG" "cd $DATA && $SPY $RUN/stage.py data/d00 $RUN/floor-out.json"
  timed py_start "floor $SCEN" "$FLOG" "$SPY -c pass"
}

# --- main ---------------------------------------------------------------------------
emit "# bench/pipeline.sh $(date -u +%FT%TZ) reps=$REPS files=$FILES stages=$STAGES tools=\"$TOOLS\" host=$(uname -n) cpus=$(nproc) kernel=$(uname -r) python=$("$PY" -V 2>&1 | cut -d' ' -f2) fs=$(stat -f -c %T "$SCRATCH")"
emit "# mlver='$MLVER' dvc='$DVC' stage python='$SPY' decision: mlver repro --dry-run vs dvc repro --dry; status: mlver status vs dvc status"
read -r -a TOOLARR <<<"$TOOLS"
OK=()
for t in "${TOOLARR[@]}"; do
  emit "# setup $t start $(date -u +%T)"
  if setup_tool "$t"; then OK+=("$t"); else
    emit "# $t $SCEN setup failed: every step FAIL"
    for s in populate noop dry status repro_one; do emit "$t $SCEN $s FAIL -"; done
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
