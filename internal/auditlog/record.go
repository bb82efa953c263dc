package auditlog

import (
	"encoding/hex"
	"net"
	"net/netip"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
)

// Record is the audit record of one call, as a caller hands it to Sink.Write. Its
// strings and slices are only read, on the writer goroutine: a caller may share them
// (a policy's role list) but must not modify them, nor the Record, once handed over.
type Record struct {
	// Time is when the call started.
	Time time.Time
	// Method is the full gRPC method, "/bank.accounts.v1.AccountsService/Transfer".
	Method string
	// Allowed is the authorization decision.
	Allowed bool
	// Code is the status the caller got: the call's outcome.
	Code codes.Code
	// Duration is how long the call took, authorization included. For a stream it is the
	// time to the decision: a stream is recorded when it opens.
	Duration time.Duration
	// Stream is true for a streaming call.
	Stream bool
	// SPIFFEID, Roles, Rule and Serial describe the caller and the rule that decided
	// (empty when the caller had no usable identity).
	SPIFFEID string
	Roles    []string
	Rule     string
	Serial   string
	// Peer is the caller's network address (formatted by the writer).
	Peer net.Addr
	// OnBehalfOf is the end user a delegate acts for: on an allowed call the end user
	// the policy accepted, on a denied one whatever the caller claimed (bounded text).
	OnBehalfOf string
	// OnBehalfRoles, OnBehalfScope and OnBehalfRule describe an accepted delegation.
	OnBehalfRoles []string
	OnBehalfScope string
	OnBehalfRule  string
	// TraceID and SpanID identify the call's trace span; zero when not traced.
	TraceID [16]byte
	SpanID  [8]byte
}

// Line types, the "type" field of a line of the audit file.
const (
	TypeCall       = "call"
	TypeCheckpoint = "checkpoint"
)

// hashSize is the size of a chain link: a SHA-256.
const hashSize = 32

// appendCall appends the JSON line of r (without the newline) for the chain position
// seq, prev. The field order is fixed; the schema is documented in docs/audit.md.
func appendCall(b []byte, r *Record, service string, seq uint64, prev *[hashSize]byte) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"time":"`...)
	b = r.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","type":"call","service":`...)
	b = appendString(b, service)
	b = append(b, `,"method":`...)
	b = appendString(b, r.Method)
	if r.Allowed {
		b = append(b, `,"decision":"allow"`...)
	} else {
		b = append(b, `,"decision":"deny"`...)
	}
	b = append(b, `,"code":`...)
	b = appendString(b, r.Code.String())
	b = append(b, `,"duration_ns":`...)
	b = strconv.AppendInt(b, int64(r.Duration), 10)
	if r.Stream {
		b = append(b, `,"stream":true`...)
	}
	b = appendField(b, "spiffe_id", r.SPIFFEID)
	b = append(b, `,"roles":`...)
	b = appendStrings(b, r.Roles)
	b = appendField(b, "rule", r.Rule)
	b = appendField(b, "serial", r.Serial)
	if r.Peer != nil {
		b = appendPeer(b, r.Peer)
	}
	if r.OnBehalfOf != "" {
		b = appendField(b, "on_behalf_of", r.OnBehalfOf)
		if r.Allowed {
			b = append(b, `,"on_behalf_roles":`...)
			b = appendStrings(b, r.OnBehalfRoles)
			b = appendField(b, "on_behalf_scope", r.OnBehalfScope)
			b = appendField(b, "on_behalf_rule", r.OnBehalfRule)
		}
	}
	if r.TraceID != [16]byte{} {
		b = append(b, `,"trace_id":"`...)
		b = hex.AppendEncode(b, r.TraceID[:])
		b = append(b, `","span_id":"`...)
		b = hex.AppendEncode(b, r.SpanID[:])
		b = append(b, '"')
	}
	return appendPrev(b, prev)
}

// appendPrev ends a line with its link to the line before it.
func appendPrev(b []byte, prev *[hashSize]byte) []byte {
	b = append(b, `,"prev":"`...)
	b = hex.AppendEncode(b, prev[:])
	return append(b, `"}`...)
}

func appendField(b []byte, name, value string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, value)
}

// appendPeer appends the "peer" field: addr as its String method writes it. A TCP
// address without a zone (every gRPC peer over TCP, in practice) is written without
// String's allocations (the IP's text, then JoinHostPort): half a microsecond of the
// writer's per record in a profile of the read loads; the text is the same
// (TestAppendPeerMatchesString).
func appendPeer(b []byte, addr net.Addr) []byte {
	b = append(b, `,"peer":`...)
	if tcp, ok := addr.(*net.TCPAddr); ok && tcp != nil && tcp.Zone == "" && tcp.Port >= 0 && tcp.Port <= 0xffff {
		if ip, ok := netip.AddrFromSlice(tcp.IP); ok {
			ip = ip.Unmap()
			b = append(b, '"')
			if ip.Is6() {
				b = append(b, '[')
				b = ip.AppendTo(b)
				b = append(b, ']')
			} else {
				b = ip.AppendTo(b)
			}
			b = append(b, ':')
			b = strconv.AppendInt(b, int64(tcp.Port), 10)
			return append(b, '"')
		}
	}
	return appendString(b, addr.String())
}

func appendStrings(b []byte, list []string) []byte {
	b = append(b, '[')
	for i, s := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}
