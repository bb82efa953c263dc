// Package authz decides which verified bank identity may call which gRPC method: a YAML
// policy maps identities to roles and roles to methods, deny by default, enforced by interceptors.
package authz
