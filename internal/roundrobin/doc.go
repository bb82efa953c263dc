// Package roundrobin turns the address of a service that runs as several
// replicas (a comma-separated list of host:port, or one DNS name with several
// addresses) into a gRPC target whose calls are spread over every replica with
// gRPC's round_robin balancer, so that a replica that goes away is routed around.
package roundrobin
