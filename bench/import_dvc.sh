#!/usr/bin/env bash
# bench/import_dvc.sh - `mlver import-dvc` of a DVC 3 project holding the 20,000-file
# folder (`many`) and the 2 GiB file (`big`), with DVC's cache present; then `mlver
# status` right after it, against `mlver status` in a native mlver project of the same
# data and `dvc status` in the DVC project.
#
# usage: bench/import_dvc.sh [REPS]          (default 3)
#
# Raw lines (stdout and $OUT), the format of bench/run.sh:
#     TOOL import STEP SECONDS PEAK_RSS_MB
#
# Once per run (untimed): the DVC project (git init, dvc init, the data copied in,
# `dvc add` of both, git commit) and the native mlver project (mlver init, add, commit).
# Every repetition (untimed first): a fresh copy of the DVC project (cp -a, DVC's cache
# and state database included); then timed:
#   mlver import     `mlver import-dvc` (converter + DVC cache objects hard-linked into
#                    mlver's cache + mlver's state memo filled from DVC's state database)
#   mlver status_after_import   `mlver status` right after the import
#   mlver status_native         `mlver status` in the native mlver project (memo warm)
#   dvc status                  `dvc status` in the DVC project
# Floors (TOOL=floor): link_cache (`cp -al` of .dvc/cache: the links the import makes),
# git_status (`git status --porcelain` in the imported project).
# A note checks the imported project: status clean, and the pointers' digests are DVC's.
#
# environment: MLVER, DVC, BENCH_SCRATCH, BENCH_DATA, STEP_TIMEOUT, PYTHON, OUT as in
# bench/run.sh.
set -uo pipefail

REPS=${1:-3}
SCEN=import
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"   # settings, emit, the isolated environment, timed
mkdir -p "$HERE/results" "$SCRATCH"
OUT=${OUT:-$HERE/results/raw-import-$(date -u +%Y%m%dT%H%M%SZ).txt}
OUT=$(realpath -m "$OUT")
mkdir -p "$(dirname "$OUT")" && : >>"$OUT"
DATA=${BENCH_DATA:-$SCRATCH/data}
LOG=$SCRATCH/import.log
: >"$LOG"
note() { emit "# $*"; }

[ -f "$DATA/big" ] || "$PY" "$HERE/make_data.py" big "$DATA/big" --gib "${BENCH_GIB:-2}" >>"$LOG" 2>&1
[ -d "$DATA/many" ] || "$PY" "$HERE/make_data.py" many "$DATA/many" --files "${BENCH_FILES:-20000}" >>"$LOG" 2>&1

W=$SCRATCH/import
rm -rf "$W" && mkdir -p "$W"
SRC=$W/dvc-src NATIVE=$W/native
emit "# bench/import_dvc.sh reps=$REPS data=$DATA mlver=$($MLVER --version 2>&1 | tail -n1) dvc=$($DVC --version 2>&1 | tail -n1)"

# the DVC project, once
mkdir -p "$SRC" && cd "$SRC" || exit 2
git init -q && "$DVC" init -q >>"$LOG" 2>&1
cp -r "$DATA/many" images && cp "$DATA/big" model.bin
"$DVC" add -q images model.bin >>"$LOG" 2>&1 || { note "dvc add failed"; exit 2; }
git add -A && git commit -qm "dvc data" >>"$LOG" 2>&1

# the native mlver project, once
mkdir -p "$NATIVE" && cd "$NATIVE" || exit 2
git init -q && $MLVER init -q >>"$LOG" 2>&1
cp -r "$DATA/many" images && cp "$DATA/big" model.bin
$MLVER add -q images model.bin >>"$LOG" 2>&1 || { note "mlver add failed"; exit 2; }
git add -A && git commit -qm "mlver data" >>"$LOG" 2>&1
$MLVER status >>"$LOG" 2>&1  # the memo warm, as in daily use

for rep in $(seq 1 "$REPS"); do
  R=$W/dvc-$rep
  rm -rf "$R" && cp -a "$SRC" "$R"   # DVC's state database is keyed by path: $SRC's rows do not apply to $R ...
  (cd "$R" && "$DVC" status -q >>"$LOG" 2>&1)  # ... so DVC fills it for $R first, as a user's own project has it
  cd "$R" || exit 2
  timed import "mlver $SCEN" "$LOG" "$MLVER import-dvc" || continue
  timed status_after_import "mlver $SCEN" "$LOG" "$MLVER status"
  cd "$NATIVE" && timed status_native "mlver $SCEN" "$LOG" "$MLVER status"
  cd "$SRC" && timed status "dvc $SCEN" "$LOG" "$DVC status -q"
  rm -rf "$W/links" && timed link_cache "floor $SCEN" "$LOG" "cp -al '$SRC/.dvc/cache' '$W/links'"
  cd "$R" && timed git_status "floor $SCEN" "$LOG" "git status --porcelain >/dev/null"
  if [ "$rep" = 1 ]; then
    clean=$($MLVER status --json 2>>"$LOG" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["clean"])')
    kept=$(grep -h '^hash:' images.mlver model.bin.mlver | sort -u | tr '\n' ' ')
    note "imported project: status clean=$clean; pointer algorithms: $kept"
  fi
  rm -rf "$R" "$W/links"
done
[ -n "${KEEP:-}" ] || rm -rf "$W"
