//go:build !unix

package escrow

func cpuNanos() int64 { return 0 }
