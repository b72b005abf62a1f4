#!/usr/bin/env bash
# bench/exp.sh - time `exp show --json -n 200` over a history of 200 commits with
# different parameters and metrics: mlver vs DVC, interleaved repetitions.
#
# usage: bench/exp.sh [REPS]               (default 3)
#
# Raw lines (stdout and $OUT), the format of bench/run.sh:
#     TOOL exp STEP SECONDS PEAK_RSS_MB
#
# Per tool, once per run (untimed): git init, init, one stage
#   train: PYTHON train.py    deps train.py, params `train` (section of
#          params.yaml: lr, epochs, seed), metrics metrics.json
# (`mlver stage add` / `dvc stage add`), a real `repro`, git commit; then
# COMMITS-1 more commits, each with new params.yaml values, the metrics.json
# train.py would write for them, and the lock file consistent with both:
#   EXP_SETUP=fast (default)  the lock of the real repro is rewritten in python
#                             (params values, metrics digest + size; xxh3-128
#                             for mlver, md5 for DVC); ~10 s per tool for 200
#   EXP_SETUP=repro           a real `repro` per commit (minutes for DVC)
# then `status` at HEAD (untimed) must report nothing changed: a note says so.
# Timed:
#   exp_show_cold  `exp show --json -n COMMITS` with no result cache: DVC keeps
#                  every commit's collected params/metrics in .dvc/tmp/exps/cache,
#                  which is deleted (untimed) first; mlver keeps no such cache
#                  (nothing to delete)
#   exp_show       the same right after: DVC answers from its cache
# every repetition, tools interleaved.  The JSON must have COMMITS + 1 rows (the
# workspace row too), each with metrics: a note says so, or WARNING.
#
# Floors (TOOL=floor, every repetition): git_log (`git log -n COMMITS
# --format=...` in the mlver repo), git_cat (params.yaml and metrics.json of every
# commit through one `git cat-file --batch`), py_start (`python3 -c pass`).
#
# Queue scenario (QUEUE=N, default 16; QUEUE=0 skips it), per tool, once per run:
# a fresh repo with one stage burning ~STAGE_CPU s of CPU (default 1) whose
# params.yaml has train.lr; N experiments queued untimed (mlver: one
# `exp run --queue -S train.lr=v1,...,vN`; DVC: N `dvc exp run --queue -S`), then
# timed:
#   queue_run   `mlver queue start -j 2` / `dvc exp run --run-all -j 2`
# and a note with the floor (N x STAGE_CPU / 2 cores) and mlver's budget
# (floor + 0.3 s x N / 2).  Every experiment must succeed: a note says so.
#
# environment: MLVER, DVC, TOOLS, FLOORS, BENCH_SCRATCH, STEP_TIMEOUT, PYTHON,
# OUT, KEEP as in bench/run.sh, and
#   COMMITS    commits in the history, and -n of exp show (default 200)
#   EXP_SETUP  fast | repro (above)
#   QUEUE, STAGE_CPU  the queue scenario (above)
set -uo pipefail

REPS=${1:-3}
SCEN=exp
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"   # settings, emit, the isolated environment, timed
COMMITS=${COMMITS:-200}
EXP_SETUP=${EXP_SETUP:-fast}
mkdir -p "$HERE/results" "$SCRATCH"
OUT=${OUT:-$HERE/results/raw-exp-$(date -u +%Y%m%dT%H%M%SZ).txt}
OUT=$(realpath -m "$OUT")
mkdir -p "$(dirname "$OUT")" && : >>"$OUT"


# the stage's script: metrics from params (deterministic; stdlib only, so the
# python running it needs no YAML library: params.yaml is written flat by us)
TRAIN_PY='import json
p = {}
section = None
for line in open("params.yaml"):
    if not line.strip() or line.lstrip().startswith("#"):
        continue
    if not line.startswith(" "):
        section = line.split(":")[0].strip()
        continue
    k, v = line.strip().split(":", 1)
    p[section + "." + k.strip()] = float(v) if "." in v else int(v)
lr, ep, seed = p["train.lr"], p["train.epochs"], p["train.seed"]
loss = round(1.0 / (1.0 + ep * lr * 10) + (seed % 7) / 1000.0, 6)
acc = round(1.0 - loss / 2, 6)
with open("metrics.json", "w") as f:
    json.dump({"loss": loss, "acc": acc, "epochs_run": ep}, f)
'
# params of commit I (1-based)
params_for() {   # params_for I -> params.yaml text
  awk -v i="$1" 'BEGIN { printf "train:\n  lr: %.4f\n  epochs: %d\n  seed: %d\n", 0.001 * (1 + (i * 7) % 50), 1 + (i * 13) % 40, i }'
}

# the fast generator: commits 2..N with params, metrics and a rewritten lock
GEN_PY='import hashlib, json, os, re, subprocess, sys
tool, n, train = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lockname = "mlver.lock" if tool == "mlver" else "dvc.lock"
if tool == "mlver":
    import xxhash
    digest = lambda b: xxhash.xxh3_128_hexdigest(b)
else:
    digest = lambda b: hashlib.md5(b).hexdigest()
text = open(lockname).read()
def params_text(i):
    return "train:\n  lr: %.4f\n  epochs: %d\n  seed: %d\n" % (0.001 * (1 + (i * 7) % 50), 1 + (i * 13) % 40, i)
old_metrics = open("metrics.json", "rb").read()
old_d, old_s = digest(old_metrics), len(old_metrics)
assert old_d in text, "metrics digest of the real repro not found in " + lockname
for i in range(2, n + 1):
    pt = params_text(i)
    with open("params.yaml", "w") as f:
        f.write(pt)
    exec(compile(train, "train.py", "exec"), {"__name__": "__main__"})
    m = open("metrics.json", "rb").read()
    d, s = digest(m), len(m)
    vals = dict(re.findall(r"^  (\w+): (\S+)$", pt, re.M))
    t = text
    # params values: flat keys (mlver: train.lr: X) or a nested section (dvc: lr: X)
    for k, v in vals.items():
        t = re.sub(r"^(\s+(?:train\.)?" + k + r": ).*$", lambda mo: mo.group(1) + v, t, flags=re.M)
    # the metrics entry: digest (mlver `digest:`, dvc `md5:`) and the size after it
    t = t.replace(old_d, d)
    t = re.sub(r"(" + d + r"\n(?:\s+\S+: \S+\n)*?\s+size: )" + str(old_s) + r"\b", lambda mo: mo.group(1) + str(s), t)
    with open(lockname, "w") as f:
        f.write(t)
    text, old_d, old_s = t, d, s
    subprocess.run(["git", "add", "params.yaml", "metrics.json", lockname], check=True)
    subprocess.run(["git", "commit", "-q", "--no-verify", "-m", "exp %d" % i], check=True)
'

RUN=$(mktemp -d "$SCRATCH/exp.XXXXXX")
trap '[ "${KEEP:-0}" = 1 ] || rm -rf "$RUN"' EXIT

setup_tool() (
  local tool=$1 tag="$1 $SCEN" R=$RUN/$1/repo LOG=$RUN/$1/log X t0
  export HOME=$RUN/$1/home DVC_SITE_CACHE_DIR=$RUN/$1/dvc-site-cache
  mkdir -p "$HOME" "$R"
  git config --global init.defaultBranch main
  case "$tool" in mlver) X=$MLVER ;; dvc) X=$DVC ;; *) emit "# $tag unknown tool"; return 1 ;; esac
  local ver
  if ! ver=$(bash -c "$X --version" 2>&1); then
    emit "# $tag '$X --version' failed: $(echo "$ver" | tail -n1)"; return 1
  fi
  emit "# $tag version $tool $(echo "$ver" | tail -n1) | $(git --version) | fs $(stat -f -c %T "$RUN")"
  fail() { emit "# $tag setup failed at $1; last log lines:"; tail -n 6 "$LOG" | sed 's/^/#   /' | tee -a "$OUT"; exit 1; }
  t0=$EPOCHREALTIME
  cd "$R" && git init -q
  printf '%s' "$TRAIN_PY" >train.py
  params_for 1 >params.yaml
  local REPRO
  if [ "$tool" = mlver ]; then
    REPRO="$X -q repro"
    { $X -q init && $X -q stage add -n train -d train.py -p train -M metrics.json -- $SPY train.py; } >>"$LOG" 2>&1 || fail "init/stage add"
  else
    REPRO="$X repro -q"
    { $X init -q && $X stage add -q -n train -d train.py -p train -M metrics.json $SPY train.py; } >>"$LOG" 2>&1 || fail "init/stage add"
  fi
  { $REPRO && git add -A && git commit -qm "exp 1"; } >>"$LOG" 2>&1 || fail "repro 1"
  if [ "$EXP_SETUP" = repro ]; then
    local i
    for ((i = 2; i <= COMMITS; i++)); do
      params_for $i >params.yaml
      { $REPRO && git add -A && git commit -qm "exp $i"; } >>"$LOG" 2>&1 || fail "repro $i"
    done
  else
    "$PY" -c "$GEN_PY" "$tool" "$COMMITS" "$TRAIN_PY" >>"$LOG" 2>&1 || fail "generating commits (EXP_SETUP=fast)"
  fi
  local n st
  n=$(git rev-list --count HEAD)
  if [ "$tool" = mlver ]; then
    st=$($X status --json 2>>"$LOG" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print("clean" if d.get("clean") else "NOT CLEAN: " + json.dumps(d.get("stages")))' 2>&1)
  else
    st=$($X status 2>>"$LOG"); echo "$st" | grep -q "up to date" && st=clean || st="NOT CLEAN: $(echo "$st" | tr '\n' ' ')"
  fi
  [ "$st" = clean ] || st="WARNING $st"
  emit "# $tag setup ($EXP_SETUP) $n commits in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }') s; status at HEAD: $st"
  return 0
)

SHOW_CMD() { if [ "$1" = mlver ]; then echo "$MLVER exp show --json -n $COMMITS"; else echo "$DVC exp show --json -n $COMMITS"; fi; }

show_tool() (   # show_tool TOOL STEP
  local tool=$1 step=$2 tag="$1 $SCEN" R=$RUN/$1/repo LOG=$RUN/$1/log
  export HOME=$RUN/$1/home DVC_SITE_CACHE_DIR=$RUN/$1/dvc-site-cache
  cd "$R" || return
  [ "$step" = exp_show_cold ] && rm -rf .dvc/tmp/exps/cache   # untimed (mlver: no such cache)
  local J=$RUN/$tool/show.json
  if timed "$step" "$tag" "$LOG" "$(SHOW_CMD "$tool") >$J"; then
    local rows
    rows=$("$PY" - "$J" <<'EOF' 2>&1
import json, sys
d = json.load(open(sys.argv[1]))
if isinstance(d, dict):      # mlver: {"version":1, "rows":[...]}
    rows = d.get("rows", [])
    ok = [r for r in rows if r.get("metrics")]
    print(f"{len(rows)} rows (incl. workspace), {len(ok)} with metrics")
else:                        # dvc: a list of baseline entries
    ok = [r for r in d if (r.get("data") or {}).get("metrics")]
    print(f"{len(d)} rows (incl. workspace), {len(ok)} with metrics")
EOF
)
    local want="$((COMMITS + 1)) rows (incl. workspace), $((COMMITS + 1)) with metrics"
    if [ "$rows" != "$want" ]; then emit "# $tag WARNING $step: $rows (want $want)"
    elif [ "$step" = exp_show_cold ] && [ ! -f "$RUN/$tool/rows-noted" ]; then
      emit "# $tag $step: $rows (ok)"; : >"$RUN/$tool/rows-noted"; fi
  fi
  return 0
)

FLOG=$RUN/floor.log
run_floors() {
  local R=$RUN/mlver/repo
  [ -d "$R/.git" ] || R=$RUN/dvc/repo
  [ -d "$R/.git" ] || return 0
  timed git_log "floor $SCEN" "$FLOG" "cd $R && git log -n $COMMITS --format='%H %D %ct %s' >/dev/null"
  timed git_cat "floor $SCEN" "$FLOG" "cd $R && git rev-list -n $COMMITS HEAD | sed 's/\$/:params.yaml/;p;s/:params.yaml\$/:metrics.json/' | git cat-file --batch >/dev/null"
  timed py_start "floor $SCEN" "$FLOG" "$PY -c pass"
}

emit "# bench/exp.sh $(date -u +%FT%TZ) reps=$REPS commits=$COMMITS setup=$EXP_SETUP tools=\"$TOOLS\" host=$(uname -n) cpus=$(nproc) kernel=$(uname -r) python=$("$PY" -V 2>&1 | cut -d' ' -f2) fs=$(stat -f -c %T "$SCRATCH")"
emit "# mlver='$MLVER exp show --json -n $COMMITS' dvc='$DVC exp show --json -n $COMMITS'"
read -r -a TOOLARR <<<"$TOOLS"
OK=()
for t in "${TOOLARR[@]}"; do
  emit "# setup $t start $(date -u +%T)"
  if setup_tool "$t"; then OK+=("$t"); else
    emit "# $t $SCEN setup failed: every step FAIL"
    for s in exp_show_cold exp_show; do emit "$t $SCEN $s FAIL -"; done
  fi
done
for ((r = 1; r <= REPS; r++)); do
  if ((r % 2)); then order=("${OK[@]}"); else order=(); for ((i = ${#OK[@]} - 1; i >= 0; i--)); do order+=("${OK[i]}"); done; fi
  for t in "${order[@]}"; do
    emit "# rep $r $t $SCEN start $(date -u +%T)"
    show_tool "$t" exp_show_cold
    show_tool "$t" exp_show
  done
  [ "${FLOORS:-1}" = 1 ] && { emit "# rep $r floor $SCEN start $(date -u +%T)"; run_floors; }
done
# --- the queue scenario -------------------------------------------------------------
QUEUE=${QUEUE:-16}
STAGE_CPU=${STAGE_CPU:-1}
BURN_PY='import json, time
lr = float([l for l in open("params.yaml") if l.strip().startswith("lr:")][0].split(":")[1])
end, x = time.process_time() + '"$STAGE_CPU"', 0
while time.process_time() < end:
    x += 1
json.dump({"acc": round(1 - lr, 6)}, open("metrics.json", "w"))
'
queue_tool() (   # queue_tool TOOL: set up (untimed), queue QUEUE experiments, time the run
  local tool=$1 tag="$1 $SCEN" R=$RUN/$1/queue LOG=$RUN/$1/queue.log X i vals=""
  export HOME=$RUN/$1/home DVC_SITE_CACHE_DIR=$RUN/$1/dvc-site-cache
  mkdir -p "$R" && cd "$R" && git init -q || return 0
  case "$tool" in mlver) X=$MLVER ;; *) X=$DVC ;; esac
  # DVC's queue starts its workers as `dvc` from PATH: DVC's own venv comes first
  case "$DVC" in */*) export PATH="$(dirname "$DVC"):$PATH" ;; esac
  printf '%s' "$BURN_PY" >train.py
  printf 'train:\n  lr: 0.5\n' >params.yaml
  for ((i = 1; i <= QUEUE; i++)); do vals+="${vals:+,}0.$((100 + i))"; done
  if [ "$tool" = mlver ]; then
    { $X -q init && $X -q stage add -n train -d train.py -p train -M metrics.json -- $SPY train.py \
      && $X -q repro && git add -A && git commit -qm base \
      && $X -q exp run --queue -S "train.lr=$vals"; } >>"$LOG" 2>&1 || { emit "# $tag queue setup failed"; return 0; }
    timed queue_run "$tag" "$LOG" "$X -q queue start -j 2" || return 0
    local n; n=$($X queue status --json 2>>"$LOG" | "$PY" -c 'import json,sys; print(sum(e["status"] == "success" for e in json.load(sys.stdin)["experiments"]))')
  else
    { $X init -q && $X stage add -q -n train -d train.py -p train -M metrics.json $SPY train.py \
      && $X repro -q && git add -A && git commit -qm base; } >>"$LOG" 2>&1 || { emit "# $tag queue setup failed"; return 0; }
    local v
    for v in ${vals//,/ }; do $X exp run -q --queue -S "train.lr=$v" >>"$LOG" 2>&1; done
    timed queue_run "$tag" "$LOG" "$X exp run --run-all -j 2" || return 0
    local n; n=$($X exp show --json 2>>"$LOG" | "$PY" -c 'import json,sys
d = json.load(sys.stdin)
print(sum(1 for b in d if b.get("experiments") for e in b["experiments"] for x in (e.get("revs") or []) if (x.get("data") or {}).get("metrics")))' 2>>"$LOG")
  fi
  emit "# $tag queue_run: $n of $QUEUE experiments succeeded; floor $(awk -v n="$QUEUE" -v c="$STAGE_CPU" 'BEGIN { printf "%.1f", n * c / 2 }') s, mlver budget $(awk -v n="$QUEUE" -v c="$STAGE_CPU" 'BEGIN { printf "%.1f", n * c / 2 + 0.3 * n / 2 }') s"
)
if [ "$QUEUE" -gt 0 ]; then
  for t in "${OK[@]}"; do
    emit "# queue $t $SCEN start $(date -u +%T)"
    queue_tool "$t"
  done
fi
emit "# bench/exp.sh done $(date -u +%FT%TZ)"
echo "raw lines: $OUT   summary: $PY $HERE/summarize.py $OUT" >&2
