// Package cli implements bankctl: cobra commands for every RPC of the bank services,
// mutual-TLS dialing, table and JSON output, and the diagnosis of every failure.
package cli
