// Command bankctl is the companion CLI of the mtlsbank services: every RPC of accounts
// and payments over mutual TLS, with readable output and one-line diagnostics.
package main
