#!/usr/bin/env bash
# Run the scikit-learn example pipeline end to end in a fresh Git repository:
#   pip install -e ".[examples]" && bash examples/sklearn/run.sh [WORKDIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="${1:-$(mktemp -d)}/sklearn-demo"
mkdir -p "$work"
cp -r "$here/mlver.yaml" "$here/params.yaml" "$here/src" "$work/"
cd "$work"
git init -q
mlver init
git add -A && git commit -qm "scikit-learn example pipeline"

mlver dag
mlver repro                       # runs generate, prepare, train, evaluate
mlver metrics show
git add -A && git commit -qm "first model"

mlver repro                       # nothing changed: nothing runs
sed -i.bak 's/max_depth: 6/max_depth: 12/' params.yaml && rm -f params.yaml.bak
mlver status                      # train: param changed: params.yaml:train.max_depth
mlver repro                       # only train and evaluate run
mlver params diff
mlver metrics diff --md
git add -A && git commit -qm "deeper trees"

git checkout -q HEAD~1 -- params.yaml
mlver repro                       # yesterday's parameters: restored from the run cache, nothing runs
echo "example repository: $work"
