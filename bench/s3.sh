#!/usr/bin/env bash
# bench/s3.sh - push / pull of the 20,000-file workload to an S3 remote served
# by a local moto server: mlver vs DVC, same data, interleaved repetitions.
#
# usage: bench/s3.sh [REPS]                (default 3)
#
# Raw lines (stdout and $OUT), the format of bench/run.sh:
#     TOOL s3 STEP SECONDS PEAK_RSS_MB
#
# Needs: moto's server (`pip install "moto[server]"`, command `moto_server`, or
# MOTO_SERVER), boto3 for $PYTHON (comes with moto), s3fs for mlver
# (`pip install "mlver[s3]"`), dvc-s3 in DVC's venv (`/opt/dvcenv/bin/pip install dvc-s3`).
# One moto server per run on 127.0.0.1:PORT (a free port), in memory; its state is
# reset (POST /moto-api/reset) after every tool run so memory stays bounded.
# Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY = testing, from the
# environment only (HOME is a fresh folder: no ~/.aws is read).
#
# Per tool and repetition, in a fresh repo (untimed): init, `add many`, git commit,
# bucket created, remote added and committed:
#   mlver: mlver remote add -d s3 s3://BUCKET/store
#          mlver remote modify s3 endpoint_url http://127.0.0.1:PORT
#   dvc:   dvc remote add -d s3 s3://BUCKET/store
#          dvc remote modify s3 endpointurl http://127.0.0.1:PORT
# Timed:
#   push           mlver -q push / dvc push -q                (20,000 objects up)
#   status_remote  mlver status -r s3 / dvc status -c -r s3   (all there: compare)
#   pull           git clone + mlver -q pull / dvc pull -q     (into a fresh clone)
# After pull the clone's data is checked against the workload's content digest.
#
# Floors (TOOL=floor, every repetition): s3_put / s3_get, every file put / got
# with boto3 from 16 threads in one python process (no hashing, no cache).
#
# environment: MLVER, DVC, TOOLS, FLOORS, BENCH_SCRATCH, BENCH_DATA, STEP_TIMEOUT,
# PYTHON, OUT, KEEP as in bench/run.sh, and
#   FILES        files of the workload (default 20000; another value uses
#                $BENCH_DATA/many-FILES)
#   MOTO_SERVER  moto server command (default moto_server)
#   MOTO_PORT    port (default: a free one)
set -uo pipefail

REPS=${1:-3}
SCEN=s3
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"   # settings, emit, the isolated environment, timed
FILES=${FILES:-20000}
MOTO=${MOTO_SERVER:-moto_server}
if [ "$FILES" = 20000 ]; then MANY=${BENCH_DATA:-$SCRATCH/data}/many; else MANY=${BENCH_DATA:-$SCRATCH/data}/many-$FILES; fi
mkdir -p "$HERE/results" "$SCRATCH"
OUT=${OUT:-$HERE/results/raw-s3-$(date -u +%Y%m%dT%H%M%SZ).txt}
OUT=$(realpath -m "$OUT")
mkdir -p "$(dirname "$OUT")" && : >>"$OUT"

export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE

[ -d "$MANY" ] || "$PY" "$HERE/make_data.py" many "$MANY" --files "$FILES" || { echo "make_data.py failed" >&2; exit 2; }
WANT=$("$PY" "$HERE/hashfloor.py" verify 0 "$MANY" 2>/dev/null)

RUN=$(mktemp -d "$SCRATCH/s3.XXXXXX")
MOTO_PID=
cleanup() {
  [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null
  [ "${KEEP:-0}" = 1 ] || rm -rf "$RUN"
}
trap cleanup EXIT

# --- the moto server ---------------------------------------------------------------
PORT=${MOTO_PORT:-$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
EP=http://127.0.0.1:$PORT
$MOTO -H 127.0.0.1 -p "$PORT" >"$RUN/moto.log" 2>&1 &
MOTO_PID=$!
for _ in $(seq 100); do
  curl -s -o /dev/null "$EP/moto-api/" 2>/dev/null && break
  "$PY" -c "import urllib.request,sys; urllib.request.urlopen('$EP/moto-api/', timeout=1)" 2>/dev/null && break
  sleep 0.2
done
S3PY() {   # S3PY 'python code using s3 (a boto3 client)' ARGS...
  local code=$1; shift
  "$PY" -c "import boto3, sys, os
s3 = boto3.client('s3', endpoint_url='$EP')
$code" "$@"
}
if ! S3PY 's3.list_buckets()' >>"$RUN/moto.log" 2>&1; then
  echo "moto server did not answer on $EP (is \"moto[server]\" installed? see $RUN/moto.log)" >&2
  tail -n 5 "$RUN/moto.log" >&2; exit 2
fi
moto_reset() { "$PY" -c "import urllib.request; urllib.request.urlopen(urllib.request.Request('$EP/moto-api/reset', method='POST'))" >/dev/null 2>&1; }

STEPS="push status_remote pull"
run_tool() (
  local tool=$1 r=$2 tag="$1 $SCEN" W X
  W=$(mktemp -d "$RUN/$tool.XXXXXX")
  export HOME=$W/home DVC_SITE_CACHE_DIR=$W/dvc-site-cache
  mkdir -p "$HOME"
  git config --global init.defaultBranch main
  local REPO=$W/repo FRESH=$W/fresh ORIGIN=$W/origin.git LOG=$W/log B="bench-$tool-$r"
  skip_all() { local s; for s in $STEPS; do emit "$tag $s FAIL -"; done; }
  case "$tool" in mlver) X=$MLVER ;; dvc) X=$DVC ;; *) emit "# $tag unknown tool"; return ;; esac
  local ver
  if ! ver=$(bash -c "$X --version" 2>&1); then
    emit "# $tag '$X --version' failed: $(echo "$ver" | tail -n1)"; skip_all; return
  fi
  [ "$r" = 1 ] && emit "# $tag version $tool $(echo "$ver" | tail -n1) | $(git --version) | endpoint $EP"
  git init -q --bare "$ORIGIN"
  mkdir -p "$REPO" && cd "$REPO" && git init -q
  cp -a "$MANY" many
  S3PY 's3.create_bucket(Bucket=sys.argv[1])' "$B" >>"$LOG" 2>&1
  local SETUP PUSH STATUS PULL
  if [ "$tool" = mlver ]; then
    SETUP="$X -q init && git commit -qm init && $X -q add many && git add many.mlver .gitignore && git commit -qm add && $X -q remote add -d s3 s3://$B/store && $X -q remote modify s3 endpoint_url $EP && git add .mlver/config && git commit -qm remote"
    PUSH="$X -q push"; STATUS="$X status -r s3"
    PULL="git clone -q $ORIGIN $FRESH && cd $FRESH && $X -q pull"
  else
    SETUP="$X init -q && git commit -qm init && $X add -q many && git add many.dvc .gitignore && git commit -qm add && $X remote add -q -d s3 s3://$B/store && $X remote modify s3 endpointurl $EP && git add .dvc/config && git commit -qm remote"
    PUSH="$X push -q"; STATUS="$X status -c -r s3"
    PULL="git clone -q $ORIGIN $FRESH && cd $FRESH && $X pull -q"
  fi
  if ! bash -c "$SETUP && git remote add origin $ORIGIN && git push -q origin main" >>"$LOG" 2>&1; then
    emit "# $tag setup failed; last log lines:"; tail -n 6 "$LOG" | sed 's/^/#   /' | tee -a "$OUT"; skip_all; return
  fi
  if ! timed push "$tag" "$LOG" "$PUSH"; then emit "$tag status_remote SKIP -"; emit "$tag pull SKIP -"; return; fi
  local n; n=$(S3PY 'print(sum(p.get("KeyCount", 0) for p in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[1])))' "$B" 2>>"$LOG")
  emit "# $tag rep $r remote objects after push: ${n:-?} (workload files: $FILES, + manifests)"
  timed status_remote "$tag" "$LOG" "$STATUS"
  if timed pull "$tag" "$LOG" "$PULL"; then
    local got; got=$("$PY" "$HERE/hashfloor.py" verify 0 "$FRESH/many" 2>/dev/null)
    if [ "$got" = "$WANT" ]; then emit "# $tag verify pull ok ($got)"; else emit "# $tag VERIFY FAILED after pull: got '${got:-nothing}', want '$WANT'"; fi
  fi
  return 0
)

FLOG=$RUN/floor.log
FLOOR_PY='import boto3, os, sys
from concurrent.futures import ThreadPoolExecutor
ep, mode, root, bucket = sys.argv[1:5]
s3 = boto3.client("s3", endpoint_url=ep, config=boto3.session.Config(max_pool_connections=16))
if mode == "put":
    s3.create_bucket(Bucket=bucket)
    files = [os.path.join(dp, f) for dp, dn, fn in os.walk(root) for f in fn]
    def put(p):
        with open(p, "rb") as f:
            s3.put_object(Bucket=bucket, Key=os.path.relpath(p, root), Body=f.read())
else:
    files = [o["Key"] for pg in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket) for o in pg.get("Contents", [])]
    def put(k):
        p = os.path.join(root, k)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(s3.get_object(Bucket=bucket, Key=k)["Body"].read())
with ThreadPoolExecutor(16) as ex:
    list(ex.map(put, files))
'
run_floors() {
  local r=$1
  timed s3_put "floor $SCEN" "$FLOG" "$PY -c '$FLOOR_PY' $EP put $MANY floor-$r"
  timed s3_get "floor $SCEN" "$FLOG" "$PY -c '$FLOOR_PY' $EP get $RUN/floor-get floor-$r"
  rm -rf "$RUN/floor-get"; moto_reset
}

emit "# bench/s3.sh $(date -u +%FT%TZ) reps=$REPS files=$FILES tools=\"$TOOLS\" host=$(uname -n) cpus=$(nproc) kernel=$(uname -r) python=$("$PY" -V 2>&1 | cut -d' ' -f2) data=$MANY fs=$(stat -f -c %T "$SCRATCH") moto=$("$PY" -c 'import moto; print(moto.__version__)' 2>/dev/null)"
emit "# mlver='$MLVER' dvc='$DVC' dvc-s3=$("${DVC%/dvc}/python" -c 'from importlib.metadata import version; print(version("dvc-s3"))' 2>/dev/null || echo '?') s3fs(mlver)=$("$PY" -c 'import s3fs; print(s3fs.__version__)' 2>/dev/null || echo missing)"
read -r -a TOOLARR <<<"$TOOLS"
for ((r = 1; r <= REPS; r++)); do
  if ((r % 2)); then order=("${TOOLARR[@]}"); else order=(); for ((i = ${#TOOLARR[@]} - 1; i >= 0; i--)); do order+=("${TOOLARR[i]}"); done; fi
  for t in "${order[@]}"; do
    emit "# rep $r $t $SCEN start $(date -u +%T)"
    run_tool "$t" "$r"
    moto_reset
  done
  [ "${FLOORS:-1}" = 1 ] && { emit "# rep $r floor $SCEN start $(date -u +%T)"; run_floors "$r"; }
done
emit "# bench/s3.sh done $(date -u +%FT%TZ)"
echo "raw lines: $OUT   summary: $PY $HERE/summarize.py $OUT" >&2
