// Command rb is RustyBalancer: one binary that runs any set of its services
// (-target=all or a comma list) and its operator commands. Main only parses
// signals; everything else is in services/app.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rustybalancer/rb/services/app"
)

// version is set at link time: -ldflags "-X main.version=v1.2.3".
var version string

// stopGrace is how long the services get to stop after SIGINT/SIGTERM.
const stopGrace = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		// A second signal, or services that do not stop in time, end the process.
		stop()
		time.Sleep(stopGrace)
		fmt.Fprintf(os.Stderr, "rb: services did not stop within %v; exiting\n", stopGrace)
		os.Exit(app.ExitFailure)
	}()
	os.Exit(app.Main(ctx, os.Args[1:], app.IO{Lookup: os.LookupEnv, Stdout: os.Stdout, Stderr: os.Stderr}, version))
}
