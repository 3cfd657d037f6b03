package dist

import (
	"os"
	"runtime"
	"strconv"
	"strings"
)

// SetThreads sets this rank's GOMAXPROCS (the threads its kernels use)
// and says why:
//
//   - GOMAXPROCS in the environment (mpirun -x GOMAXPROCS=8): kept;
//   - the launcher bound the rank to some cores (mpirun --bind-to core
//     --map-by slot:PE=8, srun --cpus-per-task=8): Go already follows the
//     CPU affinity mask, so the rank uses exactly those cores;
//   - not bound, with several ranks on this machine: the machine's cores
//     divided by the local ranks (at least 1), so ranks do not
//     oversubscribe the cores.
func SetThreads() (n int, why string) {
	if v := os.Getenv("GOMAXPROCS"); v != "" {
		return runtime.GOMAXPROCS(0), "GOMAXPROCS=" + v
	}
	affinity := runtime.NumCPU()
	total := onlineCPUs()
	if total > 0 && affinity < total {
		return runtime.GOMAXPROCS(0), "bound to " + strconv.Itoa(affinity) + " of " + strconv.Itoa(total) + " cores"
	}
	if local := LocalSize(); local > 1 {
		n := max(affinity/local, 1)
		runtime.GOMAXPROCS(n)
		return n, strconv.Itoa(affinity) + " cores shared by " + strconv.Itoa(local) + " ranks on this machine"
	}
	return runtime.GOMAXPROCS(0), "all " + strconv.Itoa(affinity) + " cores"
}

// onlineCPUs counts the machine's online CPUs (Linux; 0 when unknown).
func onlineCPUs() int {
	raw, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return 0
	}
	return countCPUList(strings.TrimSpace(string(raw)))
}

// countCPUList counts a kernel CPU list such as "0-3,8,10-11".
func countCPUList(s string) int {
	n := 0
	for _, part := range strings.Split(s, ",") {
		if part == "" {
			continue
		}
		lo, hi, ok := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return 0
		}
		b := a
		if ok {
			if b, err = strconv.Atoi(hi); err != nil {
				return 0
			}
		}
		n += b - a + 1
	}
	return n
}
