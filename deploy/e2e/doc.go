// Package e2e is the end-to-end test of the compose stack: `task e2e`
// (go test -tags e2e ./deploy/e2e/) brings the dev stack up from a clean
// state with the settings of e2e.env, sends a bounded load through the proxy,
// watches the workers scale up and back down to the minimum on the Docker
// engine and on NATS, asks for zero failed requests after warm-up, and checks
// that `task down` leaves no container, network or worker behind. Its files
// carry the e2e build tag, so `go test ./...` does not run it.
package e2e
