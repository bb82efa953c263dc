// Package spiretest runs a real SPIRE server and agent for a test: the binaries `make
// spire` puts in bin/tools, the configuration of scripts/spire (SQLite datastore, trust
// domain bank.local, join-token node attestation, unix workload attestor with
// discover_workload_path), and registration entries made with the spire-server CLI. A test
// without the binaries skips with one line, unless BANK_REQUIRE_SPIRE=1 makes that a
// failure (CI sets it).
package spiretest
