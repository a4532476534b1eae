#!/usr/bin/env bash
# Train a config on a Cloud TPU VM (single host or a multi-host slice) and fetch the run.
#
#   launch/tpu_vm.sh --name=NAME --zone=ZONE --type=ACCELERATOR_TYPE \
#       --config=CONFIG[:PRESET] --workdir=WORKDIR \
#       [--runtime=VERSION] [--project=PROJECT] [--config.KEY=VALUE ...] [--resume] \
#       [--fetch-to=DIR] [--no-analyze] [--delete-after] [--dry-run]
#
# Steps (each one gcloud command; --dry-run prints them, one shell-quoted command a
# line on stdout, and runs nothing):
#   1. reuse the TPU VM NAME if `tpu-vm describe` finds it, else `tpu-vm create` it;
#   2. copy this repository (without .venv, .git, runs/, caches) to ~/geomem_jax on
#      every worker (`tpu-vm scp --recurse --worker=all`);
#   3. on every worker: a Python 3.11 virtualenv (made with uv, since TPU VM images
#      ship an older Python) and `pip install -e ".[tpu]"`;
#   4. `geomem train` on every worker at once, with --config.mesh.devices=all unless
#      you pass another --config.mesh.devices; on a multi-host slice with
#      GEOMEM_DISTRIBUTED=1 so each process calls jax.distributed.initialize();
#   5. `geomem analyze` on worker 0 (skip with --no-analyze; a failure only warns);
#   6. copy WORKDIR from worker 0 to DIR (default: WORKDIR's parent, here);
#   7. with --delete-after, delete the TPU VM (only after a successful fetch).
#
# A relative WORKDIR is relative to ~/geomem_jax on the workers.
#
# Hosts (TPU VMs = workers) per accelerator type; only "1 or more than 1" matters
# here (GEOMEM_DISTRIBUTED=1 iff more than 1):
#   v2-N, v3-N, v4-N, v5p-N   N = TensorCores, 2 per chip, 4 chips per VM -> N/8 VMs
#                             (v4-8: 1, v4-16: 2, v4-32: 4; v5p-8: 1, v5p-16: 2)
#   v5litepod-N (v5e-N), v6e-N   N = chips, 1 core per chip; N <= 8 is one VM with
#                             up to 8 chips; N >= 16 uses 4-chip VMs -> N/4 VMs
#                             (v5litepod-8: 1, v5litepod-16: 4, v5litepod-256: 64)
# Default --runtime per type: v2/v3/v4 tpu-ubuntu2204-base, v5litepod
# v2-alpha-tpuv5-lite, v5p v2-alpha-tpuv5, v6e v2-alpha-tpuv6e.
set -euo pipefail

readonly REMOTE_DIR=geomem_jax
readonly PYTHON_VERSION=3.11
readonly USAGE='usage: launch/tpu_vm.sh --name=NAME --zone=ZONE --type=ACCELERATOR_TYPE --config=CONFIG[:PRESET] --workdir=WORKDIR
         [--runtime=VERSION] [--project=PROJECT] [--config.KEY=VALUE ...] [--resume]
         [--fetch-to=DIR] [--no-analyze] [--delete-after] [--dry-run]
  e.g. launch/tpu_vm.sh --dry-run --name=geomem-v4 --zone=us-central2-b --type=v4-32 \
           --config=configs/pathstar.py:g5000_l5 --workdir=runs/g5000'

usage_error() {
  echo "launch/tpu_vm.sh: $1" >&2
  echo "$USAGE" >&2
  exit 2
}

# --- shell quoting (POSIX single quotes, so the output also parses with shlex) -------
quote_word() {
  local safe='^[A-Za-z0-9_@%+=:,./-]+$' flag='^--[A-Za-z0-9_.-]+='
  if [[ "$1" =~ $safe ]]; then
    printf '%s' "$1"
  elif [[ "$1" =~ $flag ]]; then  # --flag='value' reads better than '--flag=value'
    printf '%s' "${BASH_REMATCH[0]}"
    quote_word "${1#"${BASH_REMATCH[0]}"}"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

quote_cmd() {
  local out="" word
  for word in "$@"; do
    out+="${out:+ }$(quote_word "$word")"
  done
  printf '%s' "$out"
}

# For commands that end up inside a single-quoted --command=...: double quotes when
# they are enough, so the printed line has no '\'' noise.
quote_cmd_inner() {
  local out="" word plain='^[^"$`\\!]*$' flag='^--[A-Za-z0-9_.-]+='
  for word in "$@"; do
    if [[ "$(quote_word "$word")" == "$word" || ! "$word" =~ $plain ]]; then
      out+="${out:+ }$(quote_word "$word")"
    elif [[ "$word" =~ $flag ]]; then
      out+="${out:+ }${BASH_REMATCH[0]}\"${word#"${BASH_REMATCH[0]}"}\""
    else
      out+="${out:+ }\"$word\""
    fi
  done
  printf '%s' "$out"
}

# Dry run: the command on stdout. Real run: "+ command" on stderr, then run it.
run() {
  if ((dry_run)); then
    quote_cmd "$@"; echo
  else
    echo "+ $(quote_cmd "$@")" >&2
    "$@"
  fi
}

note() { echo "# $*" >&2; }

# --- accelerator type -> hosts, default runtime ---------------------------------------
hosts_for_type() {  # prints the number of TPU VMs of the slice; fails on unknown types
  local family="${1%-*}" n="${1##*-}"
  [[ "$1" == *-* && "$n" =~ ^[1-9][0-9]*$ ]] || return 1
  case "$family" in
    v2 | v3 | v4 | v5p)
      ((n % 8 == 0)) || return 1
      echo $((n / 8)) ;;
    v5litepod | v6e)
      case "$n" in
        1 | 4 | 8) echo 1 ;;
        16 | 32 | 64 | 128 | 256) echo $((n / 4)) ;;
        *) return 1 ;;
      esac ;;
    *) return 1 ;;
  esac
}

default_runtime() {
  case "${1%-*}" in
    v2 | v3 | v4) echo tpu-ubuntu2204-base ;;
    v5litepod) echo v2-alpha-tpuv5-lite ;;
    v5p) echo v2-alpha-tpuv5 ;;
    v6e) echo v2-alpha-tpuv6e ;;
  esac
}

# --- arguments -------------------------------------------------------------------------
name="" zone="" type="" runtime="" config="" workdir="" project="" fetch_to=""
dry_run=0 delete_after=0 analyze=1
train_extra=()
while (($#)); do
  arg="$1"
  shift
  case "$arg" in
    --dry-run) dry_run=1; continue ;;
    --delete-after) delete_after=1; continue ;;
    --no-analyze) analyze=0; continue ;;
    --resume) train_extra+=("--resume"); continue ;;
    --config.*=*) train_extra+=("$arg"); continue ;;
    --config.*) usage_error "$arg needs a value: $arg=VALUE" ;;
  esac
  key="${arg%%=*}"
  if [[ "$arg" == *=* ]]; then
    value="${arg#*=}"
  elif (($#)) && [[ "$1" != --* ]]; then
    value="$1"
    shift
  else
    value=""
  fi
  case "$key" in
    --name | --zone | --type | --runtime | --config | --workdir | --project | --fetch-to)
      [[ -n "$value" ]] || usage_error "$key needs a value: $key=VALUE" ;;
    -h | --help) echo "$USAGE"; exit 0 ;;
    *) usage_error "unknown argument '$arg'" ;;
  esac
  case "$key" in
    --name) name="$value" ;;
    --zone) zone="$value" ;;
    --type) type="$value" ;;
    --runtime) runtime="$value" ;;
    --config) config="$value" ;;
    --workdir) workdir="$value" ;;
    --project) project="$value" ;;
    --fetch-to) fetch_to="$value" ;;
  esac
done

for required in name zone type config workdir; do
  [[ -n "${!required}" ]] || usage_error "--$required=... is required"
done

if [[ "$type" == v5e-* ]]; then  # gcloud only knows the v5litepod-N spelling
  note "--type=$type is spelled v5litepod-${type#v5e-} for gcloud"
  type="v5litepod-${type#v5e-}"
fi
if ! hosts="$(hosts_for_type "$type")"; then
  usage_error "--type=$type: unknown accelerator type; expected v2-N, v3-N, v4-N, v5p-N (N TensorCores, a multiple of 8) or v5litepod-N, v5e-N, v6e-N (N chips: 1, 4, 8, 16, ..., 256)"
fi
runtime="${runtime:-$(default_runtime "$type")}"

# A TPU launch wants every chip: shard the sweep over all devices unless told otherwise.
if [[ " ${train_extra[*]-} " != *" --config.mesh.devices="* ]]; then
  train_extra+=("--config.mesh.devices=all")
fi

distributed=()
if ((hosts > 1)); then
  distributed=(GEOMEM_DISTRIBUTED=1)
  note "TPU $type: $hosts hosts -> multi-host run with GEOMEM_DISTRIBUTED=1 on every worker"
else
  note "TPU $type: 1 host -> single-host run"
fi

case "$workdir" in
  /*) remote_workdir="$workdir"; fetch_to="${fetch_to:-.}" ;;
  *) remote_workdir="$REMOTE_DIR/$workdir"; fetch_to="${fetch_to:-$(dirname "$workdir")}" ;;
esac

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
stage="${TMPDIR:-/tmp}/geomem_stage_$name"
gcloud_tail=("--zone=$zone")
[[ -z "$project" ]] || gcloud_tail+=("--project=$project")
tpu=(gcloud compute tpus tpu-vm)

# --- remote commands (strings run by the login shell of each worker) ------------------
install_cmd="set -e; cd $REMOTE_DIR; \
if [ ! -x .venv/bin/python ]; then \
command -v uv >/dev/null || python3 -m pip install --quiet --user uv || python3 -m pip install --quiet --user --break-system-packages uv; \
\"\$(command -v uv || echo \"\$HOME/.local/bin/uv\")\" venv --seed --python $PYTHON_VERSION .venv; fi; \
.venv/bin/python -m pip install --quiet -e \".[tpu]\""
train_cmd="cd $REMOTE_DIR && $(quote_cmd_inner ${distributed[@]+"${distributed[@]}"} .venv/bin/geomem train \
  "--config=$config" "--workdir=$workdir" ${train_extra[@]+"${train_extra[@]}"})"
analyze_cmd="cd $REMOTE_DIR && { $(quote_cmd_inner .venv/bin/geomem analyze "--workdir=$workdir") \
|| echo \"geomem analyze failed; fetching the run directory anyway\" >&2; }"

on_exit() {
  local status=$?
  if ((status != 0 && !dry_run && tpu_started)); then
    echo "launch/tpu_vm.sh: failed (exit $status); the TPU VM $name is still running." >&2
    echo "  delete it with: $(quote_cmd "${tpu[@]}" delete "$name" "${gcloud_tail[@]}" --quiet)" >&2
  fi
}
tpu_started=0
trap on_exit EXIT

# 1. create or reuse
if ((dry_run)); then
  note "the create command runs only when describe does not find $name"
  run "${tpu[@]}" describe "$name" "${gcloud_tail[@]}" '--format=value(acceleratorType)'
  run "${tpu[@]}" create "$name" "${gcloud_tail[@]}" "--accelerator-type=$type" "--version=$runtime"
else
  echo "+ $(quote_cmd "${tpu[@]}" describe "$name" "${gcloud_tail[@]}" '--format=value(acceleratorType)')" >&2
  if existing="$("${tpu[@]}" describe "$name" "${gcloud_tail[@]}" '--format=value(acceleratorType)' 2>/dev/null)"; then
    # Reusing a VM of another type would get the single/multi-host decision wrong.
    if [[ "$existing" != "$type" ]]; then
      echo "launch/tpu_vm.sh: TPU VM $name exists with type $existing, not $type; pass --type=$existing or another --name" >&2
      exit 2
    fi
    note "reusing the existing TPU VM $name ($existing)"
  else
    run "${tpu[@]}" create "$name" "${gcloud_tail[@]}" "--accelerator-type=$type" "--version=$runtime"
  fi
  tpu_started=1
fi

# 2. copy the repository to every worker
run rm -rf "$stage"
run mkdir -p "$stage/$REMOTE_DIR"
pack=(tar -C "$repo" --exclude=./.venv --exclude=./.git --exclude=./runs --exclude=__pycache__
      '--exclude=*.egg-info' --exclude=.pytest_cache -cf - .)
unpack=(tar -C "$stage/$REMOTE_DIR" -xf -)
if ((dry_run)); then
  echo "$(quote_cmd "${pack[@]}") | $(quote_cmd "${unpack[@]}")"
else
  echo "+ $(quote_cmd "${pack[@]}") | $(quote_cmd "${unpack[@]}")" >&2
  "${pack[@]}" | "${unpack[@]}"
fi
run "${tpu[@]}" scp --recurse --worker=all "${gcloud_tail[@]}" "$stage/$REMOTE_DIR" "$name:"
run rm -rf "$stage"

# 3. install, 4. train, 5. analyse
run "${tpu[@]}" ssh "$name" --worker=all "${gcloud_tail[@]}" "--command=$install_cmd"
run "${tpu[@]}" ssh "$name" --worker=all "${gcloud_tail[@]}" "--command=$train_cmd"
if ((analyze)); then
  run "${tpu[@]}" ssh "$name" --worker=0 "${gcloud_tail[@]}" "--command=$analyze_cmd"
fi

# 6. fetch the run directory from worker 0
run mkdir -p "$fetch_to"
run "${tpu[@]}" scp --recurse --worker=0 "${gcloud_tail[@]}" "$name:$remote_workdir" "$fetch_to"

# 7. delete
if ((delete_after)); then
  run "${tpu[@]}" delete "$name" "${gcloud_tail[@]}" --quiet
fi
