// Package e2e proves `make demo` in `go test`: it builds the real binaries, makes a dev
// PKI with certgen, and runs scripts/demo.sh against both services on free ports.
package e2e
