// Package validation checks every request at the API edge against the protovalidate rules
// of its proto (the buf.validate annotations in proto/, compiled once per process), and
// refuses one that breaks them with InvalidArgument, a google.rpc.BadRequest naming every
// field at fault and the google.rpc.ErrorInfo of package refusal.
package validation
