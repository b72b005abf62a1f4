#!/usr/bin/env bash
# bench/import_dvc.sh - time `mlver import-dvc` on a DVC 3 project tracking a folder of
# 20,000 files (1-1.5 KiB) and one 2 GiB file, with DVC's cache present, then the first
# and second `mlver status`; and, for comparison, `mlver status` in a native mlver
# project holding the same data (right after `mlver add`, and again).
#
# usage: bench/import_dvc.sh               (one run; prints "STEP SECONDS" lines)
#
# The first `status` after the import reads no file whose (inode, mtime, size) DVC's
# state database still vouches for (the import fills mlver's state memo from it).
#
# environment: MLVER (default mlver), DVC (default dvc), BENCH_SCRATCH (default a
# temporary folder, removed afterwards unless KEEP=1), FILES (default 20000),
# BIG_MIB (default 2048).
set -euo pipefail
MLVER=${MLVER:-mlver}
DVC=${DVC:-dvc}
FILES=${FILES:-20000}
BIG_MIB=${BIG_MIB:-2048}
export DVC_NO_ANALYTICS=1 DVC_NO_UPDATE=1
B=${BENCH_SCRATCH:-$(mktemp -d)}
[ "${KEEP:-0}" = 1 ] || trap 'chmod -R u+w "$B" 2>/dev/null; rm -rf "$B"' EXIT
mkdir -p "$B/dvc" "$B/native"

timed() {  # timed STEP CMD...: run CMD (output dropped), print "STEP SECONDS"
    local step=$1; shift
    local t0 t1
    t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N)
    printf '%s %.2f\n' "$step" "$(echo "$t1 - $t0" | bc)"
}

make_data() {
    python3 - "$FILES" <<'PY'
import os, sys
os.makedirs("data/images", exist_ok=True)
for i in range(int(sys.argv[1])):
    with open(f"data/images/{i:05d}.bin", "wb") as f:
        f.write(os.urandom(1024 + i % 512))
PY
    dd if=/dev/urandom of=data/big.bin bs=1M count="$BIG_MIB" status=none
}

cd "$B/dvc"
git init -q && git config user.email bench@example.com && git config user.name bench
$DVC init -q
make_data
timed dvc_add $DVC add -q data/images data/big.bin
git add -A && git commit -qm data
timed dvc_status $DVC status -q
timed mlver_import_dvc $MLVER import-dvc
timed mlver_status_after_import $MLVER status -q
timed mlver_status_again $MLVER status -q

cd "$B/native"
git init -q && $MLVER init -q
mkdir data && cp -r "$B/dvc/data/images" data/ && cp "$B/dvc/data/big.bin" data/
timed mlver_add_native $MLVER add -q data/images data/big.bin
timed mlver_status_native $MLVER status -q
timed mlver_status_native_again $MLVER status -q
