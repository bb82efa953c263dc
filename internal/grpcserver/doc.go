// Package grpcserver assembles the bank's hardened gRPC server: mTLS credentials, limits, the
// interceptor chain (recovery, metrics, logging, rate limit, authorization), health and reflection.
package grpcserver
