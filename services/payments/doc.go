// Command payments takes payment orders from customers and tellers over mutual TLS and
// carries them out, exactly once, by calling the accounts service with its own certificate.
//
// Crash testing: a binary built with -tags crashtest honours BANK_TEST_CRASH=after-record
// (SIGKILL itself once a new payment is recorded, before accounts is called) or
// BANK_TEST_CRASH=after-transfer (once accounts answered, before the outcome is recorded).
// Without the tag the variable is ignored: production binaries have no such hook.
package main
