// Package money represents amounts of money exactly, as integer minor units of
// an ISO 4217 currency, and converts them to and from decimal major-unit text.
package money
