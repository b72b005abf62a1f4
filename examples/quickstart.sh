#!/usr/bin/env bash
# A tour of mlver in a throwaway project: version data next to code, go back in time,
# share it through a folder remote, and reproduce a small pipeline.
# Usage: bash examples/quickstart.sh        (KEEP=1 keeps the project folder)
set -euo pipefail

MLVER=${MLVER:-mlver}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mlver-quickstart.XXXXXX")
[ "${KEEP:-0}" = 1 ] || trap 'chmod -R u+w "$WORK" 2>/dev/null; rm -rf "$WORK"' EXIT
export GIT_AUTHOR_NAME=${GIT_AUTHOR_NAME:-"mlver quickstart"} GIT_AUTHOR_EMAIL=${GIT_AUTHOR_EMAIL:-quickstart@example.com}
export GIT_COMMITTER_NAME=$GIT_AUTHOR_NAME GIT_COMMITTER_EMAIL=$GIT_AUTHOR_EMAIL

step() { printf '\n\033[1m## %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; command "$@"; }
mlver() { run "$MLVER" "$@"; }

cd "$WORK"
mkdir project && cd project
step "A Git repository with mlver in it"
run git init -q -b main
mlver init
run git commit -q -m "Initialise mlver"

step "Generate a dataset: a CSV file and a folder of 'images'"
python3 - <<'PY'
import os, random
random.seed(0)
os.makedirs("data/images", exist_ok=True)
with open("data/train.csv", "w") as f:
    f.write("x,y\n")
    for i in range(5000):
        f.write(f"{i},{random.random():.6f}\n")
for i in range(50):
    with open(f"data/images/img{i:03}.bin", "wb") as f:
        f.write(random.randbytes(4096))
PY
run ls data

step "Track the data: it goes into the cache, a small pointer goes into Git"
mlver add data/train.csv data/images --desc "first export"
run cat data/train.csv.mlver
run cat data/.gitignore
run git add data/train.csv.mlver data/images.mlver data/.gitignore
run git commit -q -m "Track training data v1"
mlver status

step "Change the data, see what changed, record it with a Git commit"
echo "5000,0.5" >> data/train.csv
rm data/images/img000.bin
echo "new" > data/images/new.bin
mlver status
mlver diff
mlver commit -m "Training data v2"
run git log --oneline

step "Go back to v1: git checkout, then mlver checkout"
run git checkout -q HEAD~1
mlver checkout
run wc -l data/train.csv
run git checkout -q main
mlver checkout
run wc -l data/train.csv

step "Lose the data, get it back from the cache"
run rm -rf data/train.csv data/images
mlver checkout -q
mlver list

step "Share the data through a folder remote, get it back in a fresh clone"
mlver remote add -d store "$WORK/storage"
run git commit -q -m "Add a data remote" .mlver/config
mlver push
mlver push
run git clone -q "$WORK/project" "$WORK/clone"
(
  cd "$WORK/clone"
  mlver pull
  run cmp data/train.csv "$WORK/project/data/train.csv"
  echo "the clone's data is bit-identical"
)

step "A pipeline: mlver re-runs only what changed"
mkdir -p pipeline
cat > pipeline/params.yaml <<'EOF'
train:
  scale: 2
EOF
cat > pipeline/make_data.py <<'EOF'
import os
os.makedirs("data", exist_ok=True)
with open("data/numbers.txt", "w") as f:
    f.write("\n".join(str(i) for i in range(1000)) + "\n")
EOF
cat > pipeline/train.py <<'EOF'
import json
import yaml  # PyYAML is installed with mlver
scale = yaml.safe_load(open("params.yaml"))["train"]["scale"]
numbers = [int(x) for x in open("data/numbers.txt").read().split()]
with open("model.txt", "w") as f:
    f.write(f"weights: {[n * scale for n in numbers[:5]]}\n")
json.dump({"total": sum(numbers) * scale, "scale": scale}, open("metrics.json", "w"))
print("trained with scale", scale)
EOF
mlver stage add -n make_data -w pipeline -d make_data.py -o data -- python3 make_data.py
mlver stage add -n train -w pipeline -d train.py -d data -p train.scale -o model.txt -M metrics.json -- python3 train.py
mlver dag
mlver repro
run git add mlver.yaml mlver.lock pipeline
run git commit -q -m "Add a pipeline"
mlver repro
run sed -i.bak 's/scale: 2/scale: 3/' pipeline/params.yaml
run rm pipeline/params.yaml.bak
mlver status
mlver repro
mlver params diff
mlver metrics diff
run git checkout -q -- pipeline/params.yaml
mlver repro
mlver metrics show

step "Compare experiments across commits, and prove one still reproduces"
run sed -i.bak 's/scale: 2/scale: 3/' pipeline/params.yaml
run rm pipeline/params.yaml.bak
mlver repro
run git add pipeline mlver.lock
run git commit -q -m "Train with scale 3"
mlver exp show -n 3
mlver repro --verify
mlver plots -n 3 -o report.html
run ls report.html

step "DVC-style templating: one definition, a stage per item, values from params files"
cat >> mlver.yaml <<'EOF'
  summary:
    foreach: [small, large]
    do:
      vars: [pipeline/params.yaml]
      cmd: echo "${item} summary at scale ${train.scale}" > summary-${item}.txt
      wdir: pipeline
      deps: [metrics.json]
      outs:
      - summary-${item}.txt
EOF
mlver stage list
mlver repro summary
run cat pipeline/summary-large.txt

step "Checks that stop a worse model: thresholds, and limits relative to a base commit"
cat >> mlver.yaml <<'EOF'
checks:
  - metric: pipeline/metrics.json:total
    min: 1000
    max_drop: 10%
EOF
mlver check

step "Experiments without commits: set a parameter, run, compare; a queued sweep runs in scratch worktrees"
mlver exp run -S pipeline/params.yaml:train.scale=4 -n scale-4
mlver exp run --queue -S pipeline/params.yaml:train.scale=5,6
mlver queue start -j 2
mlver exp show -n 1

step "Data from code: mlver.api reads any revision without a checkout"
PY=$(head -1 "$(type -P "$MLVER")" 2>/dev/null | sed -n 's/^#!//p'); [ -x "${PY%% *}" ] || PY=python3
run $PY -c "import mlver.api as api; print(api.read('pipeline/metrics.json', rev='HEAD~1', mode='r').strip())"
mlver ls --rev HEAD~1 data
echo
echo "Done. Everything above ran in $WORK (removed on exit; KEEP=1 keeps it)."
