//go:build !unix

package loadgen

import "time"

// ProcessCPU returns 0: CPU accounting is implemented for unix only.
func ProcessCPU() time.Duration { return 0 }
