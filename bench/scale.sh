#!/usr/bin/env bash
# bench/scale.sh - one folder of many tiny files (1-4 KiB), at growing sizes, on a
# folder remote: add, status, push, clone + pull, gc --cloud --dry-run, each against
# `cp -r` of the same tree, with peak memory. From the slope between the sizes the
# cost of 1,000,000 files is projected (bench/RESULTS.md).
#
# usage: bench/scale.sh [SIZES]          (default "100000 300000")
#
# Raw lines (stdout and $OUT), the format of bench/run.sh:
#     TOOL scale-N STEP SECONDS PEAK_RSS_MB
# TOOL is mlver or floor. Per size N, untimed: the tree (make_data.py many --files N
# --max-kib 4 --dirs N/1000: about 1,000 files a folder) is made once under
# $BENCH_DATA/scale-N, a fresh Git repository gets `mlver init` and a copy of it, the
# folder remote lives under $BENCH_REMOTE_ROOT. Timed:
#   add            mlver add data (+ git commit of the pointer)
#   status         mlver status, nothing changed
#   push           mlver push (objects travel in packs: the remote holds a few dozen objects)
#   pull           git clone + mlver pull into a fresh clone (checked against the tree's digest)
#   gc_dry_run     mlver gc --cloud --dry-run (the plan over the remote's inventory)
# Floors: cp_r (the tree copied on this disk) and cp_r_remote (copied onto the remote's
# filesystem).
#
# environment: MLVER, BENCH_SCRATCH, BENCH_DATA, BENCH_REMOTE_ROOT, STEP_TIMEOUT,
# PYTHON, OUT, KEEP as in bench/run.sh.
set -uo pipefail

SIZES=${1:-"100000 300000"}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
DATA=${BENCH_DATA:-$SCRATCH/data}
REMOTE_ROOT=${BENCH_REMOTE_ROOT:-/dev/shm}
mkdir -p "$HERE/results" "$SCRATCH" "$DATA"
OUT=${OUT:-$HERE/results/raw-scale-$(date -u +%Y%m%dT%H%M%SZ).txt}
OUT=$(realpath -m "$OUT")
mkdir -p "$(dirname "$OUT")" && : >>"$OUT"
note() { emit "# $*"; }

note "scale.sh $(date -u +%FT%TZ) sizes=$SIZES mlver=$($MLVER --version 2>&1 | head -1) $(nproc) cores"
note "workspace fs: $(df -T "$SCRATCH" | awk 'NR==2 {print $2}'); remote fs: $(df -T "$REMOTE_ROOT" | awk 'NR==2 {print $2}')"

for N in $SIZES; do
  SCEN=scale-$N
  TREE=$DATA/scale-$N
  if [ ! -d "$TREE" ]; then
    "$PY" "$HERE/make_data.py" many "$TREE" --files "$N" --max-kib 4 --dirs $(( N / 1000 > 0 ? N / 1000 : 1 )) \
      || { note "make_data.py failed for $N"; exit 2; }
  fi
  WANT=$("$PY" "$HERE/hashfloor.py" verify 0 "$TREE" 2>/dev/null)
  note "$SCEN: $N files, $(du -sb "$TREE" | cut -f1) bytes"
  W=$(mktemp -d "$SCRATCH/scale.XXXXXX")
  RD=$(mktemp -d "$REMOTE_ROOT/mlver-scale.XXXXXX")
  LOG=$W/log

  # floors
  timed cp_r "floor $SCEN" "$LOG" "cp -r '$TREE' '$W/copy'"
  timed cp_r_remote "floor $SCEN" "$LOG" "cp -r '$TREE' '$RD/copy'"
  rm -rf "$W/copy" "$RD/copy"

  # mlver
  P=$W/proj
  mkdir -p "$P" && cd "$P" || exit 2
  git init -q && $MLVER init -q >>"$LOG" 2>&1
  git add -A && git commit -qm init >>"$LOG" 2>&1
  $MLVER remote add -d store "$RD/store" >>"$LOG" 2>&1
  mkdir -p "$RD/store"
  git add -A && git commit -qm remote >>"$LOG" 2>&1
  git init -q --bare "$RD/origin.git" && git remote add origin "$RD/origin.git"
  cp -r "$TREE" data
  timed add "mlver $SCEN" "$LOG" "$MLVER add -q data && git add data.mlver .gitignore && git commit -qm data" \
    || { rm -rf "$W" "$RD"; continue; }
  timed status "mlver $SCEN" "$LOG" "$MLVER status"
  git push -q origin HEAD:main >>"$LOG" 2>&1
  timed push "mlver $SCEN" "$LOG" "$MLVER -q push" || { rm -rf "$W" "$RD"; continue; }
  note "$SCEN remote objects after push: $(find "$RD/store" -type f | wc -l)"
  cd "$W" || exit 2
  timed pull "mlver $SCEN" "$LOG" "git clone -q -b main '$RD/origin.git' clone && cd clone && $MLVER -q pull"
  got=$("$PY" "$HERE/hashfloor.py" verify 0 "$W/clone/data" 2>/dev/null)
  if [ "$got" = "$WANT" ]; then note "$SCEN verify pull ok"; else note "$SCEN VERIFY FAILED pull: $got != $WANT"; fi
  cd "$P" || exit 2
  timed gc_dry_run "mlver $SCEN" "$LOG" "$MLVER gc --cloud --dry-run --json >/dev/null"
  cd "$SCRATCH" || exit 2
  [ -n "${KEEP:-}" ] || rm -rf "$W" "$RD"
done
