//go:build !unix

package replay

func processCPU() int64 { return -1 }
