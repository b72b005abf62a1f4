# bench/lib.sh - sourced by every bench script: raw-line output, an isolated
# environment (no real ~/.gitconfig, ~/.config or analytics) and the step timer.
# Sourced right after HERE is set; OUT (the raw output file) is set by the caller
# before the first emit.

# --- the tools under test and shared settings (environment overrides) ---------------
SCRATCH=${BENCH_SCRATCH:-/tmp/mlver-bench}
PY=${PYTHON:-python3}
if [ -z "${MLVER:-}" ]; then   # default: mlver on PATH, minus a pyenv shim's start-up cost
  MLVER=mlver
  case "$(command -v mlver)" in */shims/mlver) r=$(pyenv which mlver 2>/dev/null) && MLVER=$r ;; esac
fi
DVC=${DVC:-/opt/dvcenv/bin/dvc}
TOOLS=${TOOLS:-"mlver dvc"}
STEP_TIMEOUT=${STEP_TIMEOUT:-1800}
# the python of stage commands: an absolute path (a pyenv shim costs ~0.2 s a call)
SPY=${STAGE_PYTHON:-$(python3 -c 'import sys; print(sys.executable)')}

emit() { echo "$*" | tee -a "$OUT"; }   # one raw line, to stdout and $OUT
[ -x /usr/bin/time ] || { echo "bench: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
[ "${BASH_VERSINFO[0]}" -ge 5 ] || { echo "bench: needs bash >= 5 (EPOCHREALTIME)" >&2; exit 2; }

# --- isolation shared by every run: no real ~/.gitconfig, ~/.config, analytics --
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.invalid
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.invalid
export GIT_CONFIG_NOSYSTEM=1 DVC_NO_ANALYTICS=1 PYTHONDONTWRITEBYTECODE=1
unset XDG_CONFIG_HOME XDG_CACHE_HOME

# timed NAME TAG LOGFILE 'shell command'  -> prints "TAG NAME secs rss"; rc = command's rc
# (TAG is "TOOL SCENARIO").  Runs in the current directory.
timed() {
  local name=$1 tag=$2 log=$3 cmd=$4 t0 t1 rc rss tf
  tf=$(mktemp "$SCRATCH/time.XXXXXX")
  sync
  echo "### $tag $name: $cmd" >>"$log"
  t0=$EPOCHREALTIME
  /usr/bin/time -f "%M" -o "$tf" timeout -k 10 "$STEP_TIMEOUT" bash -c "$cmd" >>"$log" 2>&1
  rc=$?
  t1=$EPOCHREALTIME
  rss=$(tail -n1 "$tf" 2>/dev/null); rm -f "$tf"
  [[ "$rss" =~ ^[0-9]+$ ]] || rss=0
  if [ $rc -ne 0 ]; then
    emit "$tag $name FAIL -"
    emit "# $tag $name failed rc=$rc$([ $rc = 124 ] && echo " (timeout ${STEP_TIMEOUT}s)"); last log lines:"
    tail -n 8 "$log" | sed 's/^/#   /' | tee -a "$OUT"
    return $rc
  fi
  emit "$(awk -v t="$tag" -v n="$name" -v a="$t0" -v b="$t1" -v r="$rss" \
    'BEGIN { printf "%s %s %.3f %.1f", t, n, b - a, r / 1024 }')"
  return 0
}

