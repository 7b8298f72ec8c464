# tests/ref/mpi_lib.sh - sourced by the tests that run freeair under mpirun
# (test_mpi_train.sh, test_mpi_syncbn.sh, test_mpi_kill.sh): checks mpirun,
# sets `mpi_launch` (mpirun for 2 ranks on this machine, root allowed) and one
# thread per rank.
#
# Under `make check`: Open MPI's plugins (dlopen'ed, closed at MPI_Finalize)
# leave allocations that LeakSanitizer cannot even name; ranks run with leak
# detection off (every other ASan/UBSan check stays on). One-process runs in
# the tests keep it.
command -v mpirun >/dev/null || { echo "FAIL: mpirun not found (Debian package openmpi-bin)"; exit 1; }
mpi_env=()
if [ "${FREEAIR_SANITIZE:-0}" = 1 ]; then
  mpi_env=(-x "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0")
fi
mpi_launch=(mpirun --oversubscribe --allow-run-as-root "${mpi_env[@]}" -np 2)
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
