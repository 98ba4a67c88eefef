//go:build !unix

package balance

func processCPU() int64 { return -1 }
