// Package workloadapitest serves the SPIFFE Workload API's X.509 stream on a unix socket
// from certificates a test issues, so that the Workload API source can be tested without
// building SPIRE (the SPIRE end-to-end test runs the real agent).
package workloadapitest
