package grpcserver_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	identityv1 "mtlsbank/gen/bank/identity/v1"
	"mtlsbank/internal/auditlog"
	"mtlsbank/internal/auditlog/auditlogtest"
	"mtlsbank/internal/grpcserver"
)

const (
	aliceID  = "spiffe://bank.local/customer/alice"
	internID = "spiffe://bank.local/intern/ivan"
)

// auditHarness is the harness with a real audit sink in a temp dir.
type auditHarness struct {
	*harness
	sink *auditlog.Sink
	path string
	gate *auditlogtest.SyncGate
}

func startAudited(tb testing.TB, opts ...auditlog.Option) *auditHarness {
	tb.Helper()
	a := &auditHarness{path: filepath.Join(tb.TempDir(), "accounts.audit.jsonl"), gate: auditlogtest.NewSyncGate(tb)}
	sink, err := auditlog.Open(a.path, "accounts", auditlogtest.NewKey(tb), append([]auditlog.Option{auditlog.WithSyncer(a.gate.Sync)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = sink.Close() })
	tb.Cleanup(a.gate.Open) // before Close, which would wait for a held writer
	a.sink = sink
	a.harness = start(tb, "tcp", grpcserver.WithAuditSink(sink))
	return a
}

// records closes the sink and returns the call records of the file.
func (a *auditHarness) records(tb testing.TB) []auditlog.Line {
	tb.Helper()
	if err := a.sink.Close(); err != nil {
		tb.Fatal(err)
	}
	data, err := os.ReadFile(a.path)
	if err != nil {
		tb.Fatal(err)
	}
	var out []auditlog.Line
	for _, raw := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
		l, err := auditlog.ParseLine(raw)
		if err != nil {
			tb.Fatalf("%v: %s", err, raw)
		}
		if l.Type == auditlog.TypeCall {
			out = append(out, l)
		}
	}
	return out
}

func whoAmI(ctx context.Context, cc *grpc.ClientConn) error {
	_, err := identityv1.NewIdentityServiceClient(cc).WhoAmI(ctx, &identityv1.WhoAmIRequest{})
	return err
}

// TestAuditOneRecordPerCall: every call that passes the rate limit gets exactly one
// record in the audit file, with its decision, outcome code and duration; allowed calls
// no longer write an Info decision record to the log.
func TestAuditOneRecordPerCall(t *testing.T) {
	a := startAudited(t)
	alice := a.connect(t, a.pki.Client(t, aliceID))
	intern := a.connect(t, a.pki.Client(t, internID))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	calls := []struct {
		name     string
		call     func() error
		method   string
		spiffeID string
		decision string
		code     codes.Code
		stream   bool
	}{
		{"allowed", func() error { _, err := echo(ctx, alice, "hi"); return err }, "/test.v1.TestService/Echo", aliceID, "allow", codes.OK, false},
		{"invalid after authorization", func() error { _, err := echo(ctx, alice, ""); return err }, "/test.v1.TestService/Echo", aliceID, "allow", codes.InvalidArgument, false},
		{"handler panics", func() error { _, err := echo(ctx, alice, "panic"); return err }, "/test.v1.TestService/Echo", aliceID, "allow", codes.Internal, false},
		{"denied", func() error { _, err := echo(ctx, intern, "hi"); return err }, "/test.v1.TestService/Echo", internID, "deny", codes.PermissionDenied, false},
		{"read", func() error { return whoAmI(ctx, alice) }, "/bank.identity.v1.IdentityService/WhoAmI", aliceID, "allow", codes.OK, false},
		{"stream", func() error {
			s, err := alice.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/test.v1.TestService/Stream")
			if err != nil {
				return err
			}
			if err := s.SendMsg(wrapperspb.String("x")); err != nil {
				return err
			}
			if err := s.CloseSend(); err != nil {
				return err
			}
			for {
				if err := s.RecvMsg(new(wrapperspb.StringValue)); err != nil {
					return nil
				}
			}
		}, "/test.v1.TestService/Stream", aliceID, "allow", codes.OK, true},
	}
	for _, c := range calls {
		if err := c.call(); status.Code(err) != c.code {
			t.Fatalf("%s: %v, want %s", c.name, err, c.code)
		}
	}
	recs := a.records(t)
	if len(recs) != len(calls) {
		t.Fatalf("%d records for %d calls: %+v", len(recs), len(calls), recs)
	}
	for i, c := range calls {
		r := recs[i]
		if r.Method != c.method || r.SPIFFEID != c.spiffeID || r.Decision != c.decision || r.Code != c.code.String() || r.Stream != c.stream {
			t.Errorf("%s: record %+v", c.name, r)
		}
		if r.DurationNS <= 0 || r.Peer == "" || (c.decision == "allow" && r.Rule == "") {
			t.Errorf("%s: record without duration, peer or rule: %+v", c.name, r)
		}
	}
	for _, rec := range a.logs.find(map[string]any{"msg": "authz decision", "decision": "allow"}) {
		if rec["level"] != "DEBUG" {
			t.Errorf("allowed decision logged at %v, want DEBUG: %v", rec["level"], rec)
		}
	}
	if denials := a.logs.find(map[string]any{"msg": "authz decision", "decision": "deny"}); len(denials) != 1 {
		t.Errorf("denials logged: %v", denials)
	}
}

// TestAnswerWaitsForAuditFsync: with the audit writer held inside the fsync of the batch
// holding a call's record, the answer to a denial or to a call with side effects does not
// leave until that fsync returned, while a read is answered meanwhile.
func TestAnswerWaitsForAuditFsync(t *testing.T) {
	for _, tt := range []struct {
		name   string
		caller string
		code   codes.Code
	}{
		// Echo is not declared NO_SIDE_EFFECTS anywhere: it counts as changing state.
		{name: "call with side effects", caller: aliceID, code: codes.OK},
		{name: "denial", caller: internID, code: codes.PermissionDenied},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := startAudited(t)
			caller := a.connect(t, a.pki.Client(t, tt.caller))
			reader := a.connect(t, a.pki.Client(t, aliceID))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := whoAmI(ctx, reader); err != nil { // both connections up before the gate closes
				t.Fatal(err)
			}
			if err := whoAmI(ctx, caller); err != nil && status.Code(err) != codes.OK {
				t.Fatal(err)
			}
			if err := a.sink.Flush(); err != nil {
				t.Fatal(err)
			}

			a.gate.Arm()
			type answer struct {
				err     error
				durable int64 // durable prefix of the audit file when the answer arrived
			}
			answered := make(chan answer, 1)
			go func() {
				_, err := echo(ctx, caller, "marker-"+strings.ReplaceAll(tt.name, " ", "-"))
				answered <- answer{err, a.gate.Durable()}
			}()
			<-a.gate.Entered()
			marker := []byte(tt.caller)
			if !bytes.Contains(auditlogtest.Prefix(t, a.path, a.gate.InFlight())[a.gate.Durable():], marker) {
				t.Fatal("the held fsync is not the one of the call's record")
			}
			// A read is answered while the writer is held: it does not wait.
			if err := whoAmI(ctx, reader); err != nil {
				t.Fatalf("read while the audit fsync is held: %v", err)
			}
			select {
			case got := <-answered:
				t.Fatalf("answered (%v) while its record's fsync had not returned", got.err)
			default:
			}
			heldAt := a.gate.InFlight()
			a.gate.Open()
			got := <-answered
			if status.Code(got.err) != tt.code {
				t.Fatalf("answer %v, want %s", got.err, tt.code)
			}
			if got.durable < heldAt {
				t.Fatalf("answered with %d bytes durable, the record ends by %d", got.durable, heldAt)
			}
		})
	}
}

// TestAuditRefusesWhenBroken: once the audit file cannot be synced, a call that ran is
// answered Unavailable (its record may be lost: the answer must not claim otherwise), and
// later calls are refused before they run.
func TestAuditRefusesWhenBroken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "accounts.audit.jsonl")
	fail := make(chan struct{})
	sink, err := auditlog.Open(path, "accounts", auditlogtest.NewKey(t), auditlog.WithSyncer(func(f *os.File) error {
		select {
		case <-fail:
			return errors.New("injected EIO")
		default:
			return f.Sync()
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sink.Close() })
	h := start(t, "tcp", grpcserver.WithAuditSink(sink))
	alice := h.connect(t, h.pki.Client(t, aliceID))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := echo(ctx, alice, "ok"); err != nil {
		t.Fatal(err)
	}
	close(fail)
	before := h.svc.calls.Load()
	if _, err := echo(ctx, alice, "ran"); status.Code(err) != codes.Unavailable {
		t.Fatalf("call whose record failed: %v, want Unavailable", err)
	}
	if h.svc.calls.Load() != before+1 {
		t.Fatal("the call did not run")
	}
	if _, err := echo(ctx, alice, "refused"); status.Code(err) != codes.Unavailable {
		t.Fatalf("call after the failure: %v, want Unavailable", err)
	}
	if h.svc.calls.Load() != before+1 {
		t.Error("a call ran although the audit trail is broken")
	}
}
