#!/usr/bin/env bash
# bench/plots.sh - `plots diff` of 10 revisions (mlver vs `dvc plots diff`) and the trend
# report over 200 commits (mlver only: DVC has no counterpart), interleaved repetitions.
#
# usage: bench/plots.sh [REPS]               (default 3)
#
# One Git repository holds both tools' projects (`mlver init`, `dvc init`) with the same
# three plot definitions in mlver.yaml and dvc.yaml (loss.csv linear, roc.json simple,
# cm.json confusion; 2,000 records each, committed to Git), params.yaml and a
# metrics.json with 20 metrics. COMMITS commits (default 200) each change every file.
# Timed, every repetition:
#   TOOL plots diff_10   `plots diff` of the last 10 commits to one HTML file
#   mlver plots trend    `mlver plots trend -n COMMITS` (20 metrics, COMMITS commits)
# and the size of each HTML file (a note: SIZE TOOL BYTES).
#
# Raw lines: TOOL plots STEP SECONDS PEAK_RSS_MB (the format of bench/run.sh).
# environment: MLVER, DVC, BENCH_SCRATCH, STEP_TIMEOUT, OUT, COMMITS.
set -uo pipefail

REPS=${1:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
COMMITS=${COMMITS:-200}
OUT=${OUT:-$HERE/results/raw-plots-$(date -u +%Y%m%dT%H%M%SZ).txt}
mkdir -p "$SCRATCH" "$(dirname "$OUT")"
WORK=$SCRATCH/plots
LOG=$SCRATCH/plots.log
rm -rf "$WORK" && mkdir -p "$WORK" && : >"$LOG"

emit "# bench/plots.sh reps=$REPS commits=$COMMITS mlver=$($MLVER --version) dvc=$($DVC --version 2>/dev/null)"
cd "$WORK" && git init -q && $MLVER init -q >/dev/null && $DVC init -q || exit 2
cat > mlver.yaml <<'EOF'
stages:
  train:
    cmd: echo trained
    params: [lr, depth]
    metrics: [metrics.json]
plots:
  - loss.csv:
      x: step
      y: loss
  - roc:
      template: simple
      x: fpr
      y: {roc.json: tpr}
  - confusion:
      template: confusion
      x: actual
      y: {cm.json: predicted}
EOF
cat > dvc.yaml <<'EOF'
plots:
  - loss.csv:
      x: step
      y: loss
  - roc:
      template: simple
      x: fpr
      y: {roc.json: tpr}
  - confusion:
      template: confusion
      x: actual
      y: {cm.json: predicted}
EOF
"$PY" - "$COMMITS" <<'EOF' || exit 2
import json, random, subprocess, sys
n = int(sys.argv[1])
for c in range(n):
    rng = random.Random(c)
    with open("params.yaml", "w") as f:
        f.write(f"lr: {0.001 * (c + 1):.4f}\ndepth: {3 + c % 5}\n")
    json.dump({f"m{i}": round(rng.random(), 6) for i in range(20)}, open("metrics.json", "w"))
    with open("loss.csv", "w") as f:
        f.write("step,loss\n" + "".join(f"{i},{1 / (i + 1) + rng.random() * 0.01:.6f}\n" for i in range(2000)))
    json.dump({"roc": [{"fpr": i / 1999, "tpr": min(1.0, (i / 1999) ** (0.3 + c / (3 * n))),
                        "threshold": 1 - i / 1999} for i in range(2000)]}, open("roc.json", "w"))
    json.dump([{"actual": rng.choice("abcd"), "predicted": rng.choice("abcd")} for _ in range(2000)],
              open("cm.json", "w"))
    subprocess.run(["git", "add", "-A"], check=True)
    subprocess.run(["git", "commit", "-q", "-m", f"experiment {c}"], check=True)
EOF
REVS=$(git rev-list -n 10 HEAD | tr '\n' ' ')
# bytecode: a pip-installed tool has its .pyc files; mlver run from a source checkout
# (PYTHONPATH) gets them under SCRATCH, written by one untimed warm-up run per tool
export PYTHONPYCACHEPREFIX=${PYTHONPYCACHEPREFIX:-$SCRATCH/pycache}
env -u PYTHONDONTWRITEBYTECODE $MLVER plots diff $REVS -o "$SCRATCH/warm.html" >>"$LOG" 2>&1
$DVC plots diff $REVS -o "$SCRATCH/dvc-warm" >>"$LOG" 2>&1
emit "# load before timing: $(cut -d' ' -f1-3 /proc/loadavg)"

for rep in $(seq "$REPS"); do
  timed diff_10 "mlver plots" "$LOG" "$MLVER plots diff $REVS -o $SCRATCH/mlver-diff.html" || true
  timed diff_10 "dvc plots" "$LOG" "$DVC plots diff $REVS -o $SCRATCH/dvc-diff" || true
  timed trend "mlver plots" "$LOG" "$MLVER plots trend -n $COMMITS -o $SCRATCH/mlver-trend.html" || true
done
emit "# load after timing: $(cut -d' ' -f1-3 /proc/loadavg)"
emit "# SIZE mlver diff_10 $(stat -c %s "$SCRATCH/mlver-diff.html" 2>/dev/null)"
emit "# SIZE mlver trend $(stat -c %s "$SCRATCH/mlver-trend.html" 2>/dev/null)"
emit "# SIZE dvc diff_10 $(du -sb "$SCRATCH/dvc-diff" 2>/dev/null | cut -f1)"
[ -n "${KEEP:-}" ] || rm -rf "$WORK"
