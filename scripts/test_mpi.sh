#!/usr/bin/env bash
# The MPI part of CI: builds with -tags mpi (cgo over OpenMPI) and runs the
# multi-process tests (mpirun -np 2/3 --oversubscribe --allow-run-as-root):
# the dist binding's collectives and kdtrain's data-parallel acceptance
# tests (2 ranks equal one process with FrozenBN and SyncBN, sharded
# evaluation, distillation resume after SIGKILL of a rank, bad input).
# Installs OpenMPI from Debian when it is missing and we are root.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v mpirun >/dev/null || ! pkg-config --exists ompi 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing OpenMPI (libopenmpi-dev openmpi-bin)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libopenmpi-dev openmpi-bin pkg-config gcc >/dev/null \
      || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libopenmpi-dev openmpi-bin pkg-config gcc >/dev/null; }
  else
    echo "OpenMPI is missing (apt-get install libopenmpi-dev openmpi-bin) and this is not root: skipping the MPI tests" >&2
    exit 1
  fi
fi
# containers often forbid the cross-memory-attach single copy
export OMPI_MCA_btl_vader_single_copy_mechanism=none
mpirun --version | head -1
go vet -tags mpi ./...
go build -tags mpi -o /dev/null ./cmd/kdtrain
go test -tags mpi -short -count=1 -timeout 15m -run 'MPI' ./dist ./cmd/kdtrain ./cmd/kdeval "$@"
