#!/usr/bin/env bash
# bench/hooks.sh - time the Git hooks with nothing to do, on a repo tracking one
# folder of 20,000 small files: mlver vs DVC, same data, interleaved repetitions.
#
# usage: bench/hooks.sh [REPS]             (default 3)
#
# Raw lines (stdout and $OUT), the format of bench/run.sh:
#     TOOL hooks STEP SECONDS PEAK_RSS_MB
#
# Per tool, once per run (untimed): git init, init, `add many` (make_data.py many,
# FILES files), git commit = A, `mlver install` / `dvc install`, a commit B that
# only changes README (so A and B have identical pointers), HEAD at B.
# Every repetition, tools interleaved, the hook scripts the tools installed, run
# directly as Git would run them:
#   pre_commit     .git/hooks/pre-commit                (nothing changed: must pass)
#   post_checkout  .git/hooks/post-checkout A B 1       (identical pointers: no-op)
# DVC's scripts are `exec dvc git-hook pre-commit|post-checkout "$@"`, so the
# directory of $DVC is put first on PATH (for DVC's steps only).  mlver's scripts run the Python mlver
# was installed with (`PYTHON -m mlver hook ...`), not $MLVER.
# After post_checkout a note says whether any tracked file's mtime/inode changed.
#
# Floors (TOOL=floor, every repetition): statwalk_find / statwalk_py over the
# 20,000 files, git_status (`git status --porcelain` in the mlver repo, where the
# folder is ignored), py_start (`python3 -c pass`).
#
# environment: MLVER, DVC, TOOLS, FLOORS, BENCH_SCRATCH, BENCH_DATA, STEP_TIMEOUT,
# PYTHON, OUT, KEEP as in bench/run.sh, and
#   FILES   files in the tracked folder (default 20000)
set -uo pipefail

REPS=${1:-3}
SCEN=hooks
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"   # settings, emit, the isolated environment, timed
FILES=${FILES:-20000}
if [ "$FILES" = 20000 ]; then MANY=${BENCH_DATA:-$SCRATCH/data}/many; else MANY=${BENCH_DATA:-$SCRATCH/data}/many-$FILES; fi
mkdir -p "$HERE/results" "$SCRATCH"
OUT=${OUT:-$HERE/results/raw-hooks-$(date -u +%Y%m%dT%H%M%SZ).txt}
OUT=$(realpath -m "$OUT")
mkdir -p "$(dirname "$OUT")" && : >>"$OUT"


# DVC's hook scripts call plain `dvc`: its directory goes first on PATH, for the
# DVC hook steps only (that directory may hold another python3)
HOOKPATH=$PATH
case "$DVC" in */*) HOOKPATH="$(cd "$(dirname "$DVC")" && pwd):$PATH" ;; esac

[ -d "$MANY" ] || "$PY" "$HERE/make_data.py" many "$MANY" --files "$FILES" || { echo "make_data.py failed" >&2; exit 2; }

RUN=$(mktemp -d "$SCRATCH/hooks.XXXXXX")
trap '[ "${KEEP:-0}" = 1 ] || rm -rf "$RUN"' EXIT

setup_tool() (
  local tool=$1 tag="$1 $SCEN" R=$RUN/$1/repo LOG=$RUN/$1/log X
  export HOME=$RUN/$1/home DVC_SITE_CACHE_DIR=$RUN/$1/dvc-site-cache
  mkdir -p "$HOME" "$R"
  git config --global init.defaultBranch main
  case "$tool" in mlver) X=$MLVER ;; dvc) X=$DVC ;; *) emit "# $tag unknown tool"; return 1 ;; esac
  local ver
  if ! ver=$(bash -c "$X --version" 2>&1); then
    emit "# $tag '$X --version' failed: $(echo "$ver" | tail -n1)"; return 1
  fi
  emit "# $tag version $tool $(echo "$ver" | tail -n1) | $(git --version) | fs $(stat -f -c %T "$RUN")"
  cd "$R" && git init -q && echo "hooks bench" >README && git add README && git commit -qm readme
  cp -a "$MANY" many
  fail() { emit "# $tag setup failed at $1; last log lines:"; tail -n 6 "$LOG" | sed 's/^/#   /' | tee -a "$OUT"; exit 1; }
  if [ "$tool" = mlver ]; then
    { $X -q init && git commit -qm init; } >>"$LOG" 2>&1 || fail init
    { $X -q add many && git add many.mlver .gitignore && git commit -qm add; } >>"$LOG" 2>&1 || fail add
    $X -q install >>"$LOG" 2>&1 || fail install
  else
    { $X init -q && git commit -qm init; } >>"$LOG" 2>&1 || fail init
    { $X add -q many && git add many.dvc .gitignore && git commit -qm add; } >>"$LOG" 2>&1 || fail add
    $X install >>"$LOG" 2>&1 || fail install
    export PATH=$HOOKPATH   # for the hooks of commit B
  fi
  git rev-parse HEAD >"$RUN/$tool/A"
  # commit B: README only, with the hooks running (pre-commit must pass)
  { echo more >>README && git commit -qam "readme only"; } >>"$LOG" 2>&1 || fail "commit B (pre-commit hook refused?)"
  git rev-parse HEAD >"$RUN/$tool/B"
  local d; d=$(git diff --name-only "$(cat "$RUN/$tool/A")" HEAD | tr '\n' ' ')
  emit "# $tag setup ok: A..B changes only: $d; hooks: $(ls .git/hooks | grep -v sample | tr '\n' ' ')"
  return 0
)

rep_tool() (
  local tool=$1 tag="$1 $SCEN" R=$RUN/$1/repo LOG=$RUN/$1/log A B
  export HOME=$RUN/$1/home DVC_SITE_CACHE_DIR=$RUN/$1/dvc-site-cache
  cd "$R" || return
  A=$(cat "$RUN/$tool/A"); B=$(cat "$RUN/$tool/B")
  local P=""; [ "$tool" = dvc ] && P="PATH='$HOOKPATH' "
  timed pre_commit "$tag" "$LOG" "$P.git/hooks/pre-commit"
  local before after
  before=$(find many -type f -printf '%p %T@ %i\n' | sort | md5sum)
  if timed post_checkout "$tag" "$LOG" "$P.git/hooks/post-checkout $A $B 1"; then
    after=$(find many -type f -printf '%p %T@ %i\n' | sort | md5sum)
    if [ "$before" = "$after" ]; then emit "# $tag post_checkout left every file untouched (ok)"
    else emit "# $tag WARNING post_checkout rewrote files (mtime/inode changed)"; fi
  fi
  return 0
)

FLOG=$RUN/floor.log
run_floors() {
  timed statwalk_find "floor $SCEN" "$FLOG" "find $MANY -type f -printf '%s\n' >/dev/null"
  timed statwalk_py "floor $SCEN" "$FLOG" "$PY $HERE/hashfloor.py statwalk 0 $MANY >/dev/null"
  [ -d "$RUN/mlver/repo/.git" ] && timed git_status "floor $SCEN" "$FLOG" "cd $RUN/mlver/repo && git status --porcelain >/dev/null"
  timed py_start "floor $SCEN" "$FLOG" "$("$PY" -c 'import sys; print(sys.executable)') -c pass"
}

emit "# bench/hooks.sh $(date -u +%FT%TZ) reps=$REPS files=$FILES tools=\"$TOOLS\" host=$(uname -n) cpus=$(nproc) kernel=$(uname -r) python=$("$PY" -V 2>&1 | cut -d' ' -f2) data=$MANY fs=$(stat -f -c %T "$SCRATCH")"
emit "# mlver='$MLVER' dvc='$DVC' (hooks run as installed scripts)"
read -r -a TOOLARR <<<"$TOOLS"
OK=()
for t in "${TOOLARR[@]}"; do
  emit "# setup $t start $(date -u +%T)"
  if setup_tool "$t"; then OK+=("$t"); else
    emit "# $t $SCEN setup failed: every step FAIL"
    for s in pre_commit post_checkout; do emit "$t $SCEN $s FAIL -"; done
  fi
done
for ((r = 1; r <= REPS; r++)); do
  if ((r % 2)); then order=("${OK[@]}"); else order=(); for ((i = ${#OK[@]} - 1; i >= 0; i--)); do order+=("${OK[i]}"); done; fi
  for t in "${order[@]}"; do
    emit "# rep $r $t $SCEN start $(date -u +%T)"
    rep_tool "$t"
  done
  [ "${FLOORS:-1}" = 1 ] && { emit "# rep $r floor $SCEN start $(date -u +%T)"; run_floors; }
done
emit "# bench/hooks.sh done $(date -u +%FT%TZ)"
echo "raw lines: $OUT   summary: $PY $HERE/summarize.py $OUT" >&2
