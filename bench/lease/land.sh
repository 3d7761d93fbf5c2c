#!/usr/bin/env bash
# The last call of a payload landing (bench/README.md): join the parts landed in /tmp/pk, install the wheels, and
# copy the code a background driver runs to /tmp/repo (a later call must not replace what a running job reads).
# It runs ../shared/tools/gpu-payload/assemble.sh from /tmp, never from the repository root: there it copies from
# every .pK folder and stops (set -e) at the first one without payload.sha256, assembling nothing (that once
# cost a whole lease).
# usage, on the GPU machine in the repository root, carrying .pN:  bash bench/lease/land.sh N
set -euo pipefail
R=$(pwd); n=${1:?usage: bench/lease/land.sh N (the number of the last part folder, .pN)}
[ -d ".p$n" ] || { echo "no .p$n here: carry it in this call" >&2; exit 2; }
mkdir -p /tmp/pk && cp ".p$n"/part.* /tmp/pk/
(cd /tmp && bash "$R/.p$n/assemble.sh")
ls /tmp/pay/models
# the whole working tree but the part folders: a driver may read committed records and configs too
rm -rf /tmp/repo && mkdir -p /tmp/repo && tar --exclude='./.p[0-9]*' --exclude=./.git -cf - . | tar -C /tmp/repo -xf -
echo "code in /tmp/repo; start a driver with: setsid bash /tmp/repo/bench/<driver>.sh > LOG 2>&1 < /dev/null &"
