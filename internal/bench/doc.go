// Package bench is the harness behind `make bench`: it measures, in one run and in
// alternating rounds, what the bank's security costs against a bare grpc-go server.
package bench
