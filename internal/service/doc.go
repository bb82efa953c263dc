// Package service is the runtime every bank service shares: flags, TLS and policy loading,
// the hardened gRPC server, metrics and probes, reload without restart, graceful shutdown.
package service
