//go:build !linux

package dist

import "fmt"

func setThreadNice(n int) error {
	if n == 0 {
		return nil
	}
	return fmt.Errorf("dist: a nice value for the communication thread is only supported on Linux")
}
