// Command rbprof is the rb binary with a CPU profile: it runs exactly what
// services/rb runs (app.Main) and, when RB_CPUPROFILE names a file, writes
// a pprof CPU profile of the whole run there when it stops. The proxy has
// no pprof endpoint on its admin listener; this is how the bench finds where
// a request's time goes (`proxybench -rb rbprof -rb-cpuprofile DIR`, then
// `go tool pprof -top rbprof DIR/<target>.pprof`).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/rustybalancer/rb/services/app"
)

func main() {
	os.Exit(run())
}

func run() int {
	if path := os.Getenv("RB_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "rbprof: create cpu profile: %v\n", err)
			return app.ExitFailure
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "rbprof: start cpu profile: %v\n", err)
			return app.ExitFailure
		}
		defer func() {
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				fmt.Fprintf(os.Stderr, "rbprof: write cpu profile: %v\n", err)
			}
		}()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return app.Main(ctx, os.Args[1:], app.IO{Lookup: os.LookupEnv, Stdout: os.Stdout, Stderr: os.Stderr}, "rbprof")
}
