// Package grpcserver assembles the bank's hardened gRPC server: mTLS credentials, limits, the
// interceptor chain (recovery, metrics, logging, rate limit, authorization), health and reflection.
// It also keeps the registry of open connections: those whose peer chain stops checking are
// closed, those whose certificate nears its NotAfter are drained with a graceful GOAWAY, and
// connections are capped in total and per source address before any handshake.
package grpcserver
