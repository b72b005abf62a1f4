#!/usr/bin/env bash
# bench/reflink.sh - add and checkout of the 2 GiB `big` file on a filesystem that
# clones: an XFS image made with `mkfs.xfs -m reflink=1`, mounted through a loop
# device (needs root and xfsprogs), mlver and DVC (both default to reflink,copy) in
# the same run, interleaved, next to the floors.
#
# usage: bench/reflink.sh [REPS]        (default 3)
#
# Raw lines as bench/run.sh (`TOOL reflink STEP SECONDS PEAK_RSS_MB`), scenario `reflink`:
#   add       `mlver -q add big` / `dvc add -q big` alone (git add/commit untimed),
#             the file warm in the page cache
#   checkout  `mlver -q checkout` / `dvc checkout -q` after `rm big`
# Notes after each step: the bytes the step added to the filesystem (statvfs used,
# after sync: a clone adds metadata only, a copy 2 GiB), how many of the workspace
# file's extents are shared (filefrag -v), and the content check after checkout.
# Floors (TOOL=floor), every repetition, on the same file on the same mount:
#   xxh3            xxh3-128 of the file (hashfloor.py), warm
#   mlver_start     `mlver --version`;  dvc_start  `dvc --version`
#   xxh3_start      xxh3 + mlver_start of the same repetition: the floor of `add`
#                   (hash every byte once, start the program; a clone is ~free)
#   cp_reflink      `cp --reflink=always` (the floor of `checkout`)
#   cp              `cp --reflink=never` (what a copy costs here, for contrast)
#
# environment (besides lib.sh's MLVER, DVC, TOOLS, FLOORS, BENCH_SCRATCH, PYTHON,
# STEP_TIMEOUT, OUT, KEEP):
#   BENCH_DATA   where `big` lives or is made (default $BENCH_SCRATCH/data; not on XFS:
#                it is copied onto the mount for every run, untimed)
#   XFS_GIB      size of the sparse XFS image (default 8)
set -uo pipefail

REPS=${1:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
DATA=${BENCH_DATA:-$SCRATCH/data}
[ "$(id -u)" = 0 ] || { echo "bench/reflink.sh: needs root (mount -o loop)" >&2; exit 2; }
command -v mkfs.xfs >/dev/null || { echo "bench/reflink.sh: needs mkfs.xfs (apt-get install xfsprogs)" >&2; exit 2; }
mkdir -p "$HERE/results" "$SCRATCH"
OUT=${OUT:-$HERE/results/raw-reflink-$(date -u +%Y%m%dT%H%M%SZ).txt}
OUT=$(realpath -m "$OUT")
mkdir -p "$(dirname "$OUT")" && : >>"$OUT"

# lib.sh exports PYTHONDONTWRITEBYTECODE: byte-compile mlver once (untimed), as an
# installed package is, so that neither tool pays for compiling its sources every call
"$PY" -c 'import compileall, os, mlver; compileall.compile_dir(os.path.dirname(mlver.__file__), quiet=1)' 2>/dev/null
[ -f "$DATA/big" ] || "$PY" "$HERE/make_data.py" big "$DATA/big" --gib "${BENCH_GIB:-2}"

# --- the XFS mount, for this run only --------------------------------------------
BASE=$(mktemp -d "$SCRATCH/xfs.XXXXXX")
IMG=$BASE/xfs.img MNT=$BASE/mnt
cleanup() {
  cd /
  if mountpoint -q "$MNT"; then umount "$MNT" || umount -l "$MNT"; fi
  rm -rf "$BASE"
}
trap cleanup EXIT
mkdir -p "$MNT"
truncate -s "${XFS_GIB:-8}G" "$IMG"
mkfs.xfs -q -f -m reflink=1 "$IMG" || { echo "bench/reflink.sh: mkfs.xfs failed" >&2; exit 2; }
mount -o loop "$IMG" "$MNT" || { echo "bench/reflink.sh: mount -o loop failed" >&2; exit 2; }

used() { sync; df -B1 --output=used "$MNT" | tail -n1 | tr -d ' '; }
shared() {  # shared FILE -> "S/N extents shared"
  if command -v filefrag >/dev/null; then
    filefrag -v "$1" 2>/dev/null | awk '/^ *[0-9]+:/ {n++; if ($0 ~ /shared/) s++} END {printf "%d/%d extents shared", s, n}'
  else echo "extents unknown (no filefrag)"; fi
}
last_secs() { tail -n1 "$OUT" | awk '{print $4}'; }

run_tool() (   # run_tool TOOL: one fresh repo on the mount, add then checkout
  local tool=$1 tag="$1 reflink" X ADD CHECKOUT INIT PTR
  note() { emit "# $tag $*"; }
  local W; W=$(mktemp -d "$MNT/run.XXXXXX")
  trap '[ "${KEEP:-0}" = 1 ] || rm -rf "$W"' EXIT
  export HOME=$W/home DVC_SITE_CACHE_DIR=$W/dvc-site-cache
  mkdir -p "$HOME" "$W/repo"
  git config --global init.defaultBranch main
  local LOG=$W/log
  case "$tool" in
  mlver) X=$MLVER; INIT="$X -q init && { git commit -qm init || true; }"
         ADD="$X -q add big"; CHECKOUT="$X -q checkout"; PTR=big.mlver ;;
  dvc)   X=$DVC; INIT="$X init -q && git commit -qm init"
         ADD="$X add -q big"; CHECKOUT="$X checkout -q"; PTR=big.dvc ;;
  *) note "unknown tool"; return ;;
  esac
  cd "$W/repo" && git init -q
  if ! bash -c "$INIT" >>"$LOG" 2>&1; then
    note "init failed: $(tail -n1 "$LOG")"; emit "$tag add FAIL -"; emit "$tag checkout FAIL -"; return
  fi
  note "version $(bash -c "$X --version" 2>&1 | tail -n1) | fs $(stat -f -c %T .)"
  cp --reflink=never "$DATA/big" big && cat big >/dev/null   # untimed: a real copy, warm
  local want got u0
  want=$("$PY" "$HERE/hashfloor.py" verify 0 big 2>/dev/null)
  u0=$(used)
  timed add "$tag" "$LOG" "$ADD" || { emit "$tag checkout SKIP -"; return; }
  note "add added_bytes=$(( $(used) - u0 )) workspace $(shared big)"
  if [ "$tool" = dvc ]; then local ct; ct=$($X config cache.type 2>/dev/null); note "cache.type=${ct:-unset(default reflink,copy)}"; fi
  git add "$PTR" .gitignore >>"$LOG" 2>&1 && git commit -qm add >>"$LOG" 2>&1
  rm -f big
  u0=$(used)
  if timed checkout "$tag" "$LOG" "$CHECKOUT"; then
    note "checkout added_bytes=$(( $(used) - u0 )) workspace $(shared big)"
    got=$("$PY" "$HERE/hashfloor.py" verify 0 big 2>/dev/null)
    if [ "$got" = "$want" ]; then note "verify checkout ok ($got)"; else note "VERIFY FAILED after checkout: got '${got:-nothing}', want '$want'"; fi
  fi
  return 0
)

run_floors() {
  local F; F=$(mktemp -d "$MNT/floors.XXXXXX")
  local LOG=$F/log x s
  cp --reflink=never "$DATA/big" "$F/big" && cat "$F/big" >/dev/null
  timed xxh3 "floor reflink" "$LOG" "$PY $HERE/hashfloor.py xxh3_128 4 $F/big" && x=$(last_secs)
  timed mlver_start "floor reflink" "$LOG" "$MLVER --version >/dev/null" && s=$(last_secs)
  [ -n "${x:-}" ] && [ -n "${s:-}" ] && emit "floor reflink xxh3_start $(awk -v a="$x" -v b="$s" 'BEGIN {printf "%.3f", a + b}') 0.0"
  timed dvc_start "floor reflink" "$LOG" "$DVC --version >/dev/null"
  timed cp_reflink "floor reflink" "$LOG" "cp --reflink=always $F/big $F/clone"; rm -f "$F/clone"
  timed cp "floor reflink" "$LOG" "cp --reflink=never $F/big $F/copy"; rm -f "$F/copy"
  rm -rf "$F"
}

read -r -a TOOLARR <<<"$TOOLS"
emit "# bench/reflink.sh $(date -u +%FT%TZ) reps=$REPS tools=\"$TOOLS\" host=$(uname -n) cpus=$(nproc) mem=$(free -g | awk '/Mem:/ {print $2}')G kernel=$(uname -r) fs=$(stat -f -c %T "$MNT") $(xfs_info "$MNT" 2>/dev/null | grep -o 'reflink=[01]' | head -n1) image=${XFS_GIB:-8}GiB-loop"
emit "# mlver='$MLVER' dvc='$DVC' data=$DATA/big ($(stat -c %s "$DATA/big") bytes)"
for ((r = 1; r <= REPS; r++)); do
  if ((r % 2)); then order=("${TOOLARR[@]}"); else order=(); for ((i = ${#TOOLARR[@]} - 1; i >= 0; i--)); do order+=("${TOOLARR[i]}"); done; fi
  for t in "${order[@]}"; do
    emit "# rep $r $t reflink start $(date -u +%T)"
    run_tool "$t"
  done
  if [ "${FLOORS:-1}" = 1 ]; then emit "# rep $r floor reflink start $(date -u +%T)"; run_floors; fi
done
emit "# bench/reflink.sh done $(date -u +%FT%TZ)"
echo "raw lines: $OUT   summary: $PY $HERE/summarize.py $OUT" >&2
