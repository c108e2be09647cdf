#!/usr/bin/env bash
# The GPU device check of issue 18: one call, under 8 minutes, on a lent H100/H200.
#
#   benchmarks/gpu_check.sh --fetch-wheels [DIR] [--python-version 3.12]   # here (network)
#   benchmarks/gpu_check.sh [--wheels DIR]          # on the GPU machine (no network), to $OUT
#   benchmarks/gpu_check.sh --dry [--wheels DIR]    # the same steps on this CPU at toy size
#
# --fetch-wheels puts into DIR (default .gpu-wheels) the wheels the GPU machine lacks, for
# CPython 3.12 on manylinux x86_64 (SQLAlchemy, Alembic, Mako, MarkupSafe, typing_extensions,
# pinned to this venv's versions) and a wheel of Cairn built from this tree, for its entry
# points; it prints their size (the device tool carries at most 64 MiB in all).
# Options: --parts finetune,torchrun,bench (default: all three), --deadline SECONDS (default
# 440; --dry 600), --bench-args "ARGS" (more arguments for bench_zoo.py). Environment: PYTHON
# (default python3; --dry and --fetch-wheels: .venv/bin/python if there), OUT (default: a new
# temporary folder), KEEP_WORK=1 keeps the work folder (images, registry, checkpoints).
#
# Steps, each under `timeout` with its share of the deadline; one that fails is reported, the
# next one runs, and the exit status is 1 if any failed:
#   deps      installs DIR's wheels into a private folder with pip, offline; the code runs
#             from this tree (PYTHONPATH=tree:folder). --dry builds a Cairn wheel afresh and
#             installs it, with DIR's wheels if given (fetch them with --python-version 3.11).
#   images    a folder of JPEGs, 3 classes (bench_zoo.py's plan: 6,000 of 384 px on the GPU)
#   finetune  `cairn zoo finetune` of resnet50 from scratch, 2 epochs, recorded as a run, and
#             `cairn runs show` of it: runs_show.txt (hardware: GPU, memory, driver, CUDA, cuDNN)
#   torchrun  a process-group probe (NCCL; gloo on a CPU) and `torchrun --nproc_per_node 1
#             cairn zoo finetune` (1 epoch), recorded as one run, and its `runs show`: torchrun.txt
#   bench     bench_zoo.py --gpu (--dry) in the time left: bench_zoo.txt, bench_zoo.json,
#             bench_zoo_profile.txt
# Also in $OUT: gpu_check.log (everything printed) and runs.json (both runs' full records).

set -u -o pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2

MODE=gpu WHEELS="" PYVER=3.12 PARTS=finetune,torchrun,bench BENCH_ARGS="" DEADLINE=""
while (($#)); do
  case $1 in
    --dry) MODE=dry ;;
    --fetch-wheels)
      MODE=fetch
      if [[ -n ${2:-} && ${2:0:2} != -- ]]; then WHEELS=$2; shift; fi ;;
    --python-version) PYVER=${2:?--python-version needs X.Y}; shift ;;
    --wheels) WHEELS=${2:?--wheels needs a folder}; shift ;;
    --parts) PARTS=${2:?--parts needs a list}; shift ;;
    --bench-args) BENCH_ARGS=${2?--bench-args needs a string}; shift ;;
    --deadline) DEADLINE=${2:?--deadline needs seconds}; shift ;;
    -h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [[ -z ${PYTHON:-} ]]; then
  PYTHON=python3
  [[ $MODE != gpu && -x $ROOT/.venv/bin/python ]] && PYTHON=$ROOT/.venv/bin/python
fi
PY=$PYTHON
HELPER=("$ROOT/benchmarks/_gpu_finetune.py")
MIB=$((1024 * 1024))

# -- wheels -----------------------------------------------------------------------------------

build_cairn_wheel() {  # DIR: a wheel of this tree, built from a copy (the tree is left alone)
  local src rc
  src=$(mktemp -d "${TMPDIR:-/tmp}/cairn-src.XXXXXX") || return 1
  # The packages of pyproject.toml's [tool.setuptools.packages.find].
  cp -r pyproject.toml README.md registry zoo catalog dashboard demo "$src"/ &&
    find "$src" -name __pycache__ -prune -exec rm -rf {} + &&
    "$PY" -m pip wheel -q --no-deps --no-build-isolation --no-index \
      --disable-pip-version-check "$src" -w "$1"
  rc=$?
  rm -rf "$src"
  return $rc
}

fetch_wheels() {
  local dir=${WHEELS:-$ROOT/.gpu-wheels} abi=cp${PYVER/./} bytes
  local platforms=(manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64)
  mkdir -p "$dir" && rm -f "$dir"/*.whl || return 1
  # shellcheck disable=SC2046  # the pins are words
  "$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version "$PYVER" --implementation cp --abi "$abi" --abi none \
    "${platforms[@]/#/--platform=}" -d "$dir" $("$PY" "${HELPER[@]}" pins) || return 1
  build_cairn_wheel "$dir" || return 1
  ls -l "$dir"
  bytes=$(cat "$dir"/*.whl | wc -c)
  echo "$dir: $(ls "$dir"/*.whl | wc -l) wheels, $((bytes / 1024)) KiB (the device tool carries 64 MiB)"
  ((bytes < 48 * MIB))
}

if [[ $MODE == fetch ]]; then
  fetch_wheels
  exit
fi

# -- the check ----------------------------------------------------------------------------------

OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/cairn-gpu-check-out.XXXXXX")}
mkdir -p "$OUT" || exit 2
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-gpu-check.XXXXXX") || exit 2
TARGET=$WORK/site IMAGES=$WORK/images
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
TEE_PID=$!
finish() {
  [[ ${KEEP_WORK:-} == 1 ]] && echo "work folder kept: $WORK" || rm -rf "$WORK"
  exec >&- 2>&-
  wait "$TEE_PID" 2>/dev/null
}
trap finish EXIT

DEADLINE=${DEADLINE:-$([[ $MODE == dry ]] && echo 600 || echo 440)}
cat >"$WORK/cairn.toml" <<EOF
store = "sqlite:///$WORK/registry.db"
artifacts = "$WORK/artifacts"
catalog = "$WORK/catalog"
EOF
export CAIRN_CONFIG=$WORK/cairn.toml HF_HUB_OFFLINE=1 CAIRN_OFFLINE=1 PYTHONUNBUFFERED=1
export PYTHONPATH=$ROOT:$TARGET${PYTHONPATH:+:$PYTHONPATH}
if [[ $MODE == dry ]]; then
  FT=(--model test_resnet --batch-size 16 --image-size 64 --device cpu --amp bf16 --channels-last)
else
  FT=(--model resnet50 --batch-size 256 --image-size 224)
fi
FAILED=0 SUMMARY=() PART_END=0

tmo() {  # COMMAND...: run it with what is left of the current step's time
  local left=$((PART_END - SECONDS))
  ((left > 0)) || left=1
  timeout -k 10 "$left" "$@"
}

step() {  # NAME CAP RESERVE: run part_NAME in at most CAP s, leaving RESERVE s for later steps
  local name=$1 cap=$2 reserve=$3 began=$SECONDS rc
  local left=$((DEADLINE - SECONDS - reserve))
  ((left < cap)) || left=$cap
  if ((left < 15)); then
    SUMMARY+=("$name: SKIPPED, no time left") FAILED=1
    return
  fi
  PART_END=$((SECONDS + left))
  echo
  echo "=== $name (at most $left s; $SECONDS s since the start) ==="
  "part_$name"
  rc=$?
  if ((rc == 0)); then
    SUMMARY+=("$name: ok in $((SECONDS - began)) s")
  else
    SUMMARY+=("$name: FAILED (exit $rc$( ((rc == 124)) && echo ", timed out")) after $((SECONDS - began)) s")
    FAILED=1
  fi
}

selected() { [[ ,$PARTS, == *,$1,* ]]; }

part_deps() {
  local pool=$WORK/wheels wheel list files
  mkdir -p "$pool" || return 1
  if [[ $MODE == dry ]]; then
    for wheel in ${WHEELS:+"$WHEELS"/*.whl}; do
      [[ $(basename "$wheel") == cairn-* ]] || cp "$wheel" "$pool"/ || return 1
    done
    echo "building a wheel of this tree (for its entry points)"
    build_cairn_wheel "$pool" || return 1
  else
    local dir=${WHEELS:-$ROOT/.gpu-wheels}
    [[ -d $dir ]] || { echo "no wheel folder $dir: carry it (gpu_check.sh --fetch-wheels)"; return 1; }
    cp "$dir"/*.whl "$pool"/ || return 1
  fi
  list=$("$PY" "${HELPER[@]}" wheels "$pool") || return 1
  mapfile -t files <<<"$list"
  echo "installing into $TARGET: ${files[*]##*/}"
  tmo "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --disable-pip-version-check --target "$TARGET" "${files[@]}" || return 1
  tmo "$PY" "${HELPER[@]}" check-imports "$TARGET"
}

part_images() {
  tmo "$PY" "${HELPER[@]}" images "$IMAGES" ${DRY_FLAG:+"$DRY_FLAG"}
}

part_bench() {
  # shellcheck disable=SC2086  # BENCH_ARGS are words
  tmo "$PY" benchmarks/bench_zoo.py "--$MODE" --image-dir "$IMAGES" --json "$OUT/bench_zoo.json" \
    --profile "$OUT/bench_zoo_profile.txt" $BENCH_ARGS | tee "$OUT/bench_zoo.txt"
}

finetune() {  # NAME EPOCHS LAUNCHER...: a recorded fine-tune; its run id into $WORK/NAME.id
  local name=$1 epochs=$2
  shift 2
  echo "\$ ${*##*/} zoo finetune ${FT[*]} --scratch --epochs $epochs --name $name"
  (cd "$WORK" && tmo "$@" zoo finetune "${FT[@]}" --data "$IMAGES" --scratch \
    --epochs "$epochs" --project gpu-check --name "$name" --no-progress --json) |
    tee "$WORK/$name.out" || return 1
  "$PY" "${HELPER[@]}" run-id "$WORK/$name.out" >"$WORK/$name.id" || return 1
  (cd "$WORK" && tmo "${CAIRN[@]}" runs show "$(<"$WORK/$name.id")")
}

part_finetune() {
  finetune finetune 2 "${CAIRN[@]}" | tee "$OUT/runs_show.txt"
}

part_torchrun() {
  local run=("$PY" -m torch.distributed.run --standalone --nproc_per_node 1)
  {
    local fails=0
    echo "\$ torchrun --standalone --nproc_per_node 1 benchmarks/_gpu_finetune.py nccl-probe"
    (cd "$WORK" && tmo "${run[@]}" "${HELPER[@]}" nccl-probe) || fails=1
    echo
    finetune torchrun-finetune 1 "${run[@]}" "${CAIRN_SCRIPT[@]}" || fails=1
    ((fails == 0))
  } 2>&1 | tee "$OUT/torchrun.txt"
}

save_runs() {  # both runs' full records as one JSON object
  local first=1 name
  {
    echo "{"
    for name in finetune torchrun-finetune; do
      [[ -s $WORK/$name.id ]] || continue
      ((first)) || echo ","
      first=0
      printf '"%s": ' "$name"
      (cd "$WORK" && "${CAIRN[@]}" runs show --json "$(<"$WORK/$name.id")")
    done
    echo "}"
  } >"$OUT/runs.json"
}

echo "gpu_check.sh --$MODE, $(date -u +%FT%TZ), host $(uname -n), deadline $DEADLINE s"
echo "python: $PY ($("$PY" -c 'import sys; print(sys.version.split()[0])'))"
echo "out: $OUT; work: $WORK; parts: deps,images,$PARTS"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
  --format=csv,noheader
echo "shared memory (DataLoader workers): $(df -h /dev/shm 2>/dev/null | awk 'NR==2 {print $2}');" \
  "C compiler (torch.compile): $( (gcc --version || cc --version) 2>/dev/null | head -1)"
DRY_FLAG=$([[ $MODE == dry ]] && echo --dry)
step deps 60 0
step images 60 0
if [[ -x $TARGET/bin/cairn ]]; then
  CAIRN=("$TARGET/bin/cairn") CAIRN_SCRIPT=("$TARGET/bin/cairn")
else  # no console script: the tree's own entry point (plugins then need the wheel's metadata)
  CAIRN=("$PY" -m registry.cli) CAIRN_SCRIPT=(-m registry.cli)
fi
# The fine-tunes first: their time is known. The benchmark takes what is left (it reports
# what it measured when its time runs out, compiled runs last).
selected finetune && step finetune 120 "$(selected bench && echo 180 || echo 0)"
selected torchrun && step torchrun 150 "$(selected bench && echo 180 || echo 0)"
save_runs
selected bench && step bench 400 0
echo
echo "=== summary ($SECONDS s) ==="
printf '%s\n' "${SUMMARY[@]}"
echo "files in $OUT:"
ls -l "$OUT"
exit "$FAILED"
