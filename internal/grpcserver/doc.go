// Package grpcserver assembles the bank's hardened gRPC server: mTLS credentials, the
// interceptor chain (recovery, logging, authorization, validation), health and reflection.
package grpcserver
