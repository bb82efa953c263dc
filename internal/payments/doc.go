// Package payments records payment orders in their own SQLite database and carries
// them out, exactly once, by calling the accounts service on behalf of the payer.
package payments
