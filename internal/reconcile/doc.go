// Package reconcile checks the payments service against the ledger, as an auditor
// sees both through their APIs: every COMPLETED payment has exactly one ledger
// transaction under its transfer key, with its amount and accounts; no transaction
// made under a payment's key lacks a COMPLETED payment; every transaction balances
// and every account's balance is the sum of its entries.
package reconcile
