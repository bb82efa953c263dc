// Package validationtest builds hostile requests for tests of request validation: any
// request message with its fields set to values drawn from a pool.
package validationtest
