// Package telemetry exposes what a running service does: Prometheus metrics on a private
// registry (RPCs, authorization, handshakes, reloads, certificate expiry) and the HTTP probes.
package telemetry
