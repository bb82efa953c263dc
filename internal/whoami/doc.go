// Package whoami implements bank.identity.v1.IdentityService: it tells a caller the
// identity and roles the server derived from its verified certificate.
package whoami
