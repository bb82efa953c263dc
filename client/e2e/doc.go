// Package e2e proves `make demo` and the example clients in `go test`: it builds the real
// binaries, makes a dev PKI with certgen, runs scripts/demo.sh against both services on free
// ports, and runs the Python and Node clients of examples/ against both services.
package e2e
