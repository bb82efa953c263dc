// Package authz decides which verified bank identity may call which gRPC method: a YAML
// policy maps identities to roles and roles to methods, deny by default, enforced by interceptors.
//
// # Identities
//
// Each identities entry matches the caller's verified certificate; every criterion it sets
// must hold. The SPIFFE ID criteria compare parsed IDs (go-spiffe refuses empty, "." and
// ".." segments, a trailing slash and upper-case trust domains before any matcher runs):
//
//   - spiffe_id: exactly that ID. "spiffe://bank.local/auditor/audrey" matches that ID
//     only, not ".../auditor/audrey2" nor ".../auditor/audrey/x".
//   - spiffe_id_prefix: the IDs strictly under a path, by whole segments. It must be
//     written with its trailing slash. "spiffe://bank.local/teller/" matches
//     ".../teller/tina" and ".../teller/branch/tom"; it does not match ".../teller"
//     itself (use spiffe_id for that), ".../tellerx/tina", nor an ID of another trust
//     domain. Whatever follows the slash must be one or more non-empty segments, so
//     ".../teller/" and ".../teller//x" never match (they are not valid SPIFFE IDs either).
//   - spiffe_id_glob: path.Match over the whole ID, which must start with
//     "spiffe://<trust domain>/". '*' matches any run of characters other than '/', '?'
//     one such character, [a-z] a class. "spiffe://bank.local/customer/*" matches
//     ".../customer/alice", not ".../customer/alice/extra" nor ".../customer".
//   - subject_cn, subject_ou, dns_san (case-insensitive), fingerprint_sha256: exact
//     comparisons, never substrings.
//
// A caller matching no entry holds only ImplicitRole ("authenticated").
//
// # Roles, scopes and delegation
//
// A role grants methods ("/pkg.Service/Method" or "/pkg.Service/*") with a scope: own (the
// default) limits the call to resources its principal owns, any does not. A role with
// delegate: true may name an end user in the x-bank-on-behalf-of metadata when it calls a
// method it grants. A role's on_behalf rule lists the methods a delegate may perform for
// an end user holding that role, and with which scope:
//
//	customer:
//	  scope: own
//	  methods: [/bank.accounts.v1.AccountsService/GetAccount]
//	  on_behalf:
//	    scope: own
//	    methods: [/bank.accounts.v1.AccountsService/Transfer]
//
// A delegated call is allowed only if a role of the caller that grants the method has
// delegate: true, AND the end user (matched by the SPIFFE ID entries only) holds a role
// whose on_behalf rule grants the method. Its principal is then the end user, with the
// on_behalf scope: ownership is checked against the end user, never against the delegate,
// and neither the delegate's scope nor the end user's scope for its own direct calls
// applies. An end user the policy maps to no role gets nothing done for it; ImplicitRole
// may neither delegate nor carry an on_behalf rule. Listing a method under on_behalf does
// not let the end user call it directly (a customer still may not call Transfer itself).
//
// Check refuses (at start-up and on reload) a policy leaving a served method without a
// rule, or letting a role delegate a served method that no role grants on_behalf.
package authz
