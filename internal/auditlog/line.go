package auditlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Line is one parsed line of an audit file: a call record or a checkpoint. The fields
// are those of the schema (docs/audit.md); a field a line does not carry is empty.
type Line struct {
	Seq        uint64   `json:"seq"`
	Time       string   `json:"time"`
	Type       string   `json:"type"`
	Service    string   `json:"service"`
	Method     string   `json:"method,omitempty"`
	Decision   string   `json:"decision,omitempty"`
	Code       string   `json:"code,omitempty"`
	DurationNS int64    `json:"duration_ns,omitempty"`
	Stream     bool     `json:"stream,omitempty"`
	SPIFFEID   string   `json:"spiffe_id,omitempty"`
	Roles      []string `json:"roles,omitempty"`
	Rule       string   `json:"rule,omitempty"`
	Serial     string   `json:"serial,omitempty"`
	Peer       string   `json:"peer,omitempty"`
	OnBehalfOf string   `json:"on_behalf_of,omitempty"`
	// OnBehalfRoles, OnBehalfScope and OnBehalfRule describe an accepted delegation.
	OnBehalfRoles []string `json:"on_behalf_roles,omitempty"`
	OnBehalfScope string   `json:"on_behalf_scope,omitempty"`
	OnBehalfRule  string   `json:"on_behalf_rule,omitempty"`
	TraceID       string   `json:"trace_id,omitempty"`
	SpanID        string   `json:"span_id,omitempty"`
	// Key and Sig are a checkpoint's signing key (KeyID) and signature (base64).
	Key string `json:"key,omitempty"`
	Sig string `json:"sig,omitempty"`
	// Prev is the SHA-256 of the line before, in hex; 64 zeros for the first line.
	Prev string `json:"prev"`
}

// ParseLine parses one line of an audit file (without its newline) and checks the
// fields every line must have.
func ParseLine(raw []byte) (Line, error) {
	var l Line
	if err := json.Unmarshal(raw, &l); err != nil {
		return Line{}, fmt.Errorf("not a JSON record: %w", err)
	}
	switch {
	case l.Seq == 0:
		return Line{}, errors.New("no seq")
	case l.Type != TypeCall && l.Type != TypeCheckpoint:
		return Line{}, fmt.Errorf("unknown type %q", l.Type)
	case len(l.Prev) != 2*hashSize:
		return Line{}, errors.New("no prev hash")
	}
	if _, err := time.Parse(time.RFC3339Nano, l.Time); err != nil {
		return Line{}, fmt.Errorf("bad time: %w", err)
	}
	if _, err := hex.DecodeString(l.Prev); err != nil {
		return Line{}, fmt.Errorf("bad prev hash: %w", err)
	}
	return l, nil
}

// appendCheckpoint appends a signed checkpoint line for position seq, prev.
func appendCheckpoint(b []byte, service string, seq uint64, t time.Time, keyID string, sig []byte, prev *[hashSize]byte) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"time":"`...)
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","type":"checkpoint","service":`...)
	b = appendString(b, service)
	b = appendField(b, "key", keyID)
	b = append(b, `,"sig":"`...)
	b = base64.StdEncoding.AppendEncode(b, sig)
	b = append(b, '"')
	return appendPrev(b, prev)
}

// lineHash is the chain link to raw: the SHA-256 of the line's bytes without newline.
func lineHash(raw []byte) [hashSize]byte { return sha256.Sum256(raw) }

// lastLine returns the last line of data, which ends with a newline.
func lastLine(data []byte) []byte {
	data = data[:len(data)-1]
	return data[bytes.LastIndexByte(data, '\n')+1:]
}
