package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	accountsv1 "mtlsbank/gen/bank/accounts/v1"
	identityv1 "mtlsbank/gen/bank/identity/v1"
	paymentsv1 "mtlsbank/gen/bank/payments/v1"
)

// rawCodec sends and receives a message as the bytes it is given: the way to put a
// malformed protobuf on the wire through a real gRPC client.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: %T", v)
	}
	return *b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

// malformedBodies are request bodies that are not valid protobuf, or are valid
// protobuf of the wrong shape: an invalid wire type, a truncated varint, a length
// past the end, invalid UTF-8 in a string field, a group that never ends, a field
// number 0, a nested message (field 3 of Deposit, amount) full of garbage, a
// 64 KiB field, and seeded random bytes.
func malformedBodies() map[string][]byte {
	bodies := map[string][]byte{
		"invalid wire type":           {0x0f},
		"truncated varint":            {0x08, 0xff},
		"length past the end":         {0x0a, 0x7f, 'a'},
		"invalid UTF-8 in a string":   {0x0a, 0x02, 0xff, 0xfe},
		"unterminated group":          {0x0b, 0x08, 0x01},
		"field number zero":           {0x00, 0x01},
		"garbage in a nested message": {0x1a, 0x03, 0x0f, 0xff, 0xff},
		"wrong wire type for a field": {0x08, 0x01, 0x10, 0x01, 0x18, 0x01},
		"huge length varint":          {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"a 64 KiB string":             append([]byte{0x0a, 0x80, 0x80, 0x04}, make([]byte, 64<<10)...),
	}
	rng := rand.New(rand.NewPCG(11, 12))
	for i := range 20 {
		b := make([]byte, 1+rng.IntN(64))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		bodies[fmt.Sprintf("random %02d", i)] = b
	}
	return bodies
}

// TestMalformedProtobufs sends malformed request bodies to every RPC of both
// services, as a teller (who may call most of them) and as an identity without a
// role, over real mTLS. Every call gets a clean error or, for bodies that happen
// to parse, an ordinary answer; no handler panics, no money moves, and both
// services still answer afterwards.
func TestMalformedProtobufs(t *testing.T) {
	b := newBank(t) // payments without a rate limit: every body that parses reaches its handler
	aliceAcc := b.open(t, aliceID, 100_00)
	bobAcc := b.open(t, bobID, 0)
	ids := []string{aliceAcc, bobAcc}

	type target struct {
		lis      func(context.Context, string) (net.Conn, error)
		serverID string
		methods  []string
		streams  []string
	}
	payLis := func(ctx context.Context, _ string) (net.Conn, error) { return b.payLis.DialContext(ctx) }
	targets := []target{
		{lis: b.accounts.dial, serverID: accountsID, methods: methodsOf(accountsv1.AccountsService_ServiceDesc, identityv1.IdentityService_ServiceDesc), streams: streamsOf(accountsv1.AccountsService_ServiceDesc)},
		{lis: payLis, serverID: paymentsID, methods: methodsOf(paymentsv1.PaymentsService_ServiceDesc, identityv1.IdentityService_ServiceDesc)},
	}
	bodies := malformedBodies()
	allowed := map[codes.Code]bool{
		codes.OK: true, codes.InvalidArgument: true, codes.Internal: true, codes.PermissionDenied: true,
		codes.NotFound: true, codes.FailedPrecondition: true, codes.ResourceExhausted: true, codes.Unauthenticated: true,
	}
	counts := map[codes.Code]int{}
	defer func() { t.Logf("codes: %v", counts) }() // a 64 KiB body is ResourceExhausted (--max-recv-msg-size)
	for _, caller := range []string{tellerID, internID} {
		for _, tg := range targets {
			cc := b.client(t, caller, tg.lis, tg.serverID)
			for _, method := range tg.methods {
				for name, body := range bodies {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					in, out := body, []byte(nil)
					err := cc.Invoke(ctx, method, &in, &out, grpc.ForceCodec(rawCodec{}))
					cancel()
					code := status.Code(err)
					counts[code]++
					if !allowed[code] {
						t.Errorf("%s %s %q: %v, want a clean refusal", caller, method, name, err)
					}
					if code == codes.Internal && !strings.Contains(status.Convert(err).Message(), "unmarshal") &&
						status.Convert(err).Message() != "internal error" {
						t.Errorf("%s %s %q: Internal %q: neither a decoding error nor the generic message", caller, method, name, status.Convert(err).Message())
					}
				}
			}
			for _, method := range tg.streams {
				for name, body := range bodies {
					if err := callStream(cc, method, body); err != nil {
						t.Errorf("%s %s %q: %v", caller, method, name, err)
					}
				}
			}
		}
	}
	b.wantBalances(t, ids, 100_00, 0)
	if _, err := b.payments(t, tellerID).ListPayments(context.Background(), &paymentsv1.ListPaymentsRequest{}); err != nil {
		t.Fatalf("payments after the malformed calls: %v", err)
	}
	if _, err := b.accountsClient(t, tellerID).GetAccount(context.Background(), &accountsv1.GetAccountRequest{Id: aliceAcc}); err != nil {
		t.Fatalf("accounts after the malformed calls: %v", err)
	}
	if logs := b.logs.String(); strings.Contains(logs, "panic") {
		t.Fatalf("a malformed request made a handler panic:\n%s", logs)
	}
}

// callStream opens a server stream with a malformed request and reads it until it
// ends: a clean status, or the first message of a request that happened to parse.
func callStream(cc *grpc.ClientConn, method string, body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	desc := &grpc.StreamDesc{ServerStreams: true}
	st, err := cc.NewStream(ctx, desc, method, grpc.ForceCodec(rawCodec{}))
	if err != nil {
		return err
	}
	in := body
	if err := st.SendMsg(&in); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if err := st.CloseSend(); err != nil {
		return err
	}
	var out []byte
	err = st.RecvMsg(&out)
	switch code := status.Code(err); {
	case err == nil, errors.Is(err, io.EOF):
		return nil // it parsed: a watch from some sequence; one entry or none is fine
	case code == codes.DeadlineExceeded:
		return nil // it parsed and waits for entries
	case code == codes.InvalidArgument, code == codes.Internal, code == codes.PermissionDenied, code == codes.Unauthenticated:
		return nil
	default:
		return fmt.Errorf("stream ended with %v", err)
	}
}

func methodsOf(descs ...grpc.ServiceDesc) []string {
	var out []string
	for _, d := range descs {
		for _, m := range d.Methods {
			out = append(out, "/"+d.ServiceName+"/"+m.MethodName)
		}
	}
	return out
}

func streamsOf(descs ...grpc.ServiceDesc) []string {
	var out []string
	for _, d := range descs {
		for _, s := range d.Streams {
			out = append(out, "/"+d.ServiceName+"/"+s.StreamName)
		}
	}
	return out
}
