package auditlog_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"mtlsbank/internal/auditlog"
	"mtlsbank/internal/auditlog/auditlogtest"
)

func TestRecordSchema(t *testing.T) {
	path, key := auditPath(t), newKey(t)
	s := open(t, path, key)
	r := record(writeMethod, true, "role payments-service grants it")
	r.OnBehalfOf, r.OnBehalfRoles, r.OnBehalfScope, r.OnBehalfRule = "spiffe://bank.local/customer/bob", []string{"customer"}, "own", "customers"
	r.TraceID = [16]byte{1, 2, 3}
	r.SpanID = [8]byte{9}
	write(t, s, r)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ls := lines(t, path)
	if len(ls) != 2 {
		t.Fatalf("want a record and the closing checkpoint, got %d lines:\n%s", len(ls), bytes.Join(ls, nil))
	}
	var got map[string]any
	if err := json.Unmarshal(ls[0], &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"seq": 1.0, "type": "call", "service": "accounts", "method": writeMethod, "decision": "allow", "code": "OK",
		"duration_ns": 1.5e6, "spiffe_id": "spiffe://bank.local/customer/alice", "roles": []any{"customer"},
		"rule": "role payments-service grants it", "serial": "01AB", "peer": "127.0.0.1:4242",
		"on_behalf_of": "spiffe://bank.local/customer/bob", "on_behalf_roles": []any{"customer"}, "on_behalf_scope": "own",
		"on_behalf_rule": "customers", "trace_id": "01020300000000000000000000000000", "span_id": "0900000000000000",
		"prev": strings.Repeat("0", 64),
	}
	for k, v := range want {
		if gv, _ := json.Marshal(got[k]); string(gv) != mustJSON(t, v) {
			t.Errorf("%s = %s, want %s", k, gv, mustJSON(t, v))
		}
	}
	if ts, err := time.Parse(time.RFC3339Nano, got["time"].(string)); err != nil || !ts.Equal(r.Time) {
		t.Errorf("time %v (%v), want %v", got["time"], err, r.Time)
	}
	cp := parse(t, ls[1])
	if cp.Type != auditlog.TypeCheckpoint || cp.Seq != 2 || cp.Sig == "" || cp.Key == "" {
		t.Errorf("closing line is not a signed checkpoint: %+v", cp)
	}
	if rep := verify(t, path, key); rep.Break != nil || rep.Records != 1 || rep.Checkpoints != 1 || rep.CheckpointFileSeq != 2 {
		t.Errorf("verify: %+v", rep)
	}
}

func mustJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// TestHostileStrings: whatever a caller puts in a field, a record stays one JSON line
// that reads back as written.
func TestHostileStrings(t *testing.T) {
	path, key := auditPath(t), newKey(t)
	s := open(t, path, key)
	texts := []string{
		"plain", "quote\" backslash\\ slash/", "new\nline\r\ttab", "nul\x00 bell\x07 esc\x1b del\x7f",
		"invalid \xff\xfe utf8", "line sep \u2028 para \u2029", "emoji 💸 and é", `{"seq":99,"prev":"x"}`,
	}
	for _, text := range texts {
		r := record(readMethod, false, text)
		r.OnBehalfOf = text
		write(t, s, r)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ls := lines(t, path)
	for i, text := range texts {
		l := parse(t, ls[i])
		var want string // what encoding/json makes of it: U+FFFD for each invalid byte
		if err := json.Unmarshal([]byte(mustJSON(t, text)), &want); err != nil {
			t.Fatal(err)
		}
		if l.Rule != want || l.OnBehalfOf != want {
			t.Errorf("%q read back as %q / %q", text, l.Rule, l.OnBehalfOf)
		}
	}
	if rep := verify(t, path, key); rep.Break != nil {
		t.Errorf("verify: %v", rep.Break)
	}
}

// TestRestartContinuesChain: a sink reopened on its file appends to the same chain, and
// a torn last line left by a crash is cut off and noted.
func TestRestartContinuesChain(t *testing.T) {
	path, key := auditPath(t), newKey(t)
	s := open(t, path, key)
	for i := range 3 {
		write(t, s, record(writeMethod, true, "first run "+string(rune('a'+i))))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A crash in the middle of a write leaves a line without its end.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"seq":5,"time":"2026-01-01T00:00:00Z","type":"call","serv`); err != nil {
		t.Fatal(err)
	}
	f.Close()

	logs := &lockedBuffer{}
	s = open(t, path, key, auditlog.WithLogger(logs.logger()))
	if !strings.Contains(logs.String(), "torn last line cut off") {
		t.Errorf("the cut is not logged: %s", logs)
	}
	write(t, s, record(writeMethod, false, "second run"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rep := verify(t, path, key)
	if rep.Break != nil {
		t.Fatalf("verify after restart: %v", rep.Break)
	}
	if rep.Records != 4 || rep.LastSeq != 6 {
		t.Errorf("records %d, last seq %d; want 4 records up to seq 6 (two checkpoints)", rep.Records, rep.LastSeq)
	}
}

func TestRotationContinuesChain(t *testing.T) {
	path, key := auditPath(t), newKey(t)
	s := open(t, path, key, auditlog.WithMaxFileSize(2<<10), auditlog.WithFlushInterval(0))
	for i := range 40 {
		write(t, s, record(writeMethod, true, strings.Repeat("x", i)))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rotated, err := auditlog.RotatedFiles(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(rotated) < 3 {
		t.Fatalf("want at least 3 rotated files of 2KiB, got %v", rotated)
	}
	rep := verify(t, path, key)
	if rep.Break != nil || rep.Records != 40 {
		t.Fatalf("verify across %d files: %+v", len(rep.Files), rep)
	}
	// The first line of each file links to the last of the one before.
	first := parse(t, lines(t, rotated[1])[0])
	prevLines := lines(t, rotated[0])
	if want := lineHash(prevLines[len(prevLines)-1]); first.Prev != want {
		t.Errorf("first line of %s links to %s, want %s", rotated[1], first.Prev, want)
	}
	// A restart whose active file is empty continues from the newest rotated file.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(auditlog.CheckpointPath(path)); err != nil {
		t.Fatal(err)
	}
	last := lines(t, rotated[len(rotated)-1])
	s = open(t, path, key)
	write(t, s, record(writeMethod, true, "after restart"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := parse(t, lines(t, path)[0]).Prev, lineHash(last[len(last)-1]); got != want {
		t.Errorf("restart on an empty file links to %s, want the newest rotated file's last line %s", got, want)
	}
}

func TestOpenRefuses(t *testing.T) {
	key := newKey(t)
	t.Run("a file behind its checkpoint", func(t *testing.T) {
		path := auditPath(t)
		s := open(t, path, key)
		for range 3 {
			write(t, s, record(writeMethod, true, "r"))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		ls := lines(t, path)
		if err := os.WriteFile(path, bytes.Join(ls[:2], nil), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := auditlog.Open(path, "accounts", key); !errors.Is(err, auditlog.ErrBehindCheckpoint) {
			t.Errorf("Open on a cut-off trail: %v, want ErrBehindCheckpoint", err)
		}
	})
	t.Run("a last line that is not a record", func(t *testing.T) {
		path := auditPath(t)
		if err := os.WriteFile(path, []byte("hello\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := auditlog.Open(path, "accounts", key); err == nil || !strings.Contains(err.Error(), "unreadable") {
			t.Errorf("Open: %v", err)
		}
	})
	t.Run("a second writer", func(t *testing.T) {
		path := auditPath(t)
		open(t, path, key)
		if _, err := auditlog.Open(path, "accounts", key); err == nil || !strings.Contains(err.Error(), "in use") {
			t.Errorf("second Open: %v", err)
		}
	})
	t.Run("an RSA key", func(t *testing.T) {
		if _, err := auditlog.Open(auditPath(t), "accounts", rsaKey(t)); !errors.Is(err, auditlog.ErrKeyType) {
			t.Errorf("Open with RSA: %v", err)
		}
	})
}

// TestDurableBeforeReturn: Write of a denial or of a call with side effects returns
// only after the fsync covering its record returned; a read's returns while that
// fsync is still blocked.
func TestDurableBeforeReturn(t *testing.T) {
	for _, tt := range []struct {
		name    string
		method  string
		allowed bool
		waits   bool
	}{
		{name: "denial", method: readMethod, allowed: false, waits: true},
		{name: "money-moving call", method: writeMethod, allowed: true, waits: true},
		{name: "unknown method", method: "/x.v1.Unknown/Do", allowed: true, waits: true},
		{name: "allowed read", method: readMethod, allowed: true, waits: false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path, gate := auditPath(t), auditlogtest.NewSyncGate(t)
			s := open(t, path, newKey(t), auditlog.WithSyncer(gate.Sync))
			t.Cleanup(gate.Open) // before Close, which would wait for a held writer
			gate.Arm()
			marker := "marker-" + strings.ReplaceAll(tt.name, " ", "-")
			returned := make(chan int64, 1)
			go func() {
				if err := s.Write(record(tt.method, tt.allowed, marker)); err != nil {
					t.Error(err)
				}
				returned <- gate.Durable()
			}()
			<-gate.Entered() // the writer is inside the fsync of the batch holding the record
			if !bytes.Contains(auditlogtest.Prefix(t, path, gate.InFlight()), []byte(marker)) {
				t.Fatal("the blocked fsync is not the one of the record's batch")
			}
			if tt.waits {
				gate.Open()
				durable := <-returned
				if !bytes.Contains(auditlogtest.Prefix(t, path, durable), []byte(marker)) {
					t.Fatalf("Write returned before the fsync of its record returned (durable prefix %d bytes)", durable)
				}
				return
			}
			durable := <-returned // returns although the fsync is still blocked
			if bytes.Contains(auditlogtest.Prefix(t, path, durable), []byte(marker)) {
				t.Fatal("the read's record was durable already: the test proves nothing")
			}
			gate.Open()
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestReadsDurableWithinWindow: records that do not wait are written and synced on
// their own once the flush window has passed, without anyone waiting or flushing.
func TestReadsDurableWithinWindow(t *testing.T) {
	path := auditPath(t)
	s := open(t, path, newKey(t), auditlog.WithFlushInterval(20*time.Millisecond))
	for range 10 {
		write(t, s, record(readMethod, true, "read"))
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Written < 10 {
		if time.Now().After(deadline) {
			t.Fatalf("reads not written within 10s: %+v", s.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	if n := len(lines(t, path)); n != 10 {
		t.Errorf("%d lines in the file, want the 10 reads", n)
	}
}

// TestBrokenTrailRefuses: a failed fsync fails the waiting caller, logs the records
// that were not made durable, and every later call is refused.
func TestBrokenTrailRefuses(t *testing.T) {
	path := auditPath(t)
	logs := &lockedBuffer{}
	diskErr := errors.New("injected EIO")
	s := open(t, path, newKey(t), auditlog.WithLogger(logs.logger()), auditlog.WithSyncer(func(*os.File) error { return diskErr }))
	if err := s.Write(record(writeMethod, true, "lost-transfer")); !errors.Is(err, auditlog.ErrBroken) || !errors.Is(err, diskErr) {
		t.Fatalf("Write with a failing disk: %v", err)
	}
	if !strings.Contains(logs.String(), "lost-transfer") {
		t.Errorf("the record that was not made durable is not in the log: %s", logs)
	}
	if err := s.Admit(); !errors.Is(err, auditlog.ErrBroken) {
		t.Errorf("Admit after a failure: %v", err)
	}
	if err := s.Write(record(readMethod, true, "x")); !errors.Is(err, auditlog.ErrBroken) {
		t.Errorf("Write after a failure: %v", err)
	}
	if st := s.Stats(); st.Failures != 1 || st.Refused != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestBackPressure: with the writer stuck, Admit refuses new calls once the queue is
// three quarters full, counted; records already handed over are all written.
func TestBackPressure(t *testing.T) {
	path, gate := auditPath(t), auditlogtest.NewSyncGate(t)
	s := open(t, path, newKey(t), auditlog.WithQueueSize(16), auditlog.WithSyncer(gate.Sync), auditlog.WithFlushInterval(0),
		auditlog.WithAdmitWait(0))
	t.Cleanup(gate.Open)
	gate.Arm()
	write(t, s, record(readMethod, true, "first"))
	<-gate.Entered()
	admitted := 0
	for s.Admit() == nil {
		write(t, s, record(readMethod, true, "queued"))
		admitted++
		if admitted > 100 {
			t.Fatal("Admit never refused")
		}
	}
	if err := s.Admit(); !errors.Is(err, auditlog.ErrBusy) {
		t.Fatalf("Admit with a full queue: %v", err)
	}
	if admitted+1 != 12 {
		t.Errorf("%d records pending with a queue of 16, want 12 (three quarters)", admitted+1)
	}
	gate.Open()
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Written != uint64(admitted+1) || st.Refused < 1 || st.Pending != 0 {
		t.Errorf("stats %+v", st)
	}
	if s.Admit() != nil {
		t.Error("Admit still refuses once the writer caught up")
	}
}

// TestAdmitWaitsForRoom: with the queue three quarters full, a new call waits for the
// writer rather than being refused at once, and goes ahead as soon as the writer has
// caught up; with a writer that stays stuck it is refused after the wait, counted.
func TestAdmitWaitsForRoom(t *testing.T) {
	path, gate := auditPath(t), auditlogtest.NewSyncGate(t)
	s := open(t, path, newKey(t), auditlog.WithQueueSize(16), auditlog.WithSyncer(gate.Sync), auditlog.WithFlushInterval(0),
		auditlog.WithAdmitWait(time.Hour))
	t.Cleanup(gate.Open)
	gate.Arm()
	write(t, s, record(readMethod, true, "first"))
	<-gate.Entered()
	for range 11 { // 12 pending: three quarters of 16
		write(t, s, record(readMethod, true, "queued"))
	}
	admitted := make(chan error, 1)
	go func() { admitted <- s.Admit() }()
	// The old behaviour (refuse at once) returns ErrBusy here, before the writer moves.
	gate.Open()
	if err := <-admitted; err != nil {
		t.Fatalf("Admit once the writer caught up: %v", err)
	}
	if st := s.Stats(); st.Refused != 0 {
		t.Errorf("stats %+v, want nothing refused", st)
	}

	stuck := auditlogtest.NewSyncGate(t)
	s2 := open(t, auditPath(t), newKey(t), auditlog.WithQueueSize(16), auditlog.WithSyncer(stuck.Sync), auditlog.WithFlushInterval(0),
		auditlog.WithAdmitWait(50*time.Millisecond))
	t.Cleanup(stuck.Open)
	stuck.Arm()
	write(t, s2, record(readMethod, true, "first"))
	<-stuck.Entered()
	for range 11 {
		write(t, s2, record(readMethod, true, "queued"))
	}
	if err := s2.Admit(); !errors.Is(err, auditlog.ErrBusy) {
		t.Fatalf("Admit with the writer stuck past the wait: %v, want ErrBusy", err)
	}
	if st := s2.Stats(); st.Refused != 1 {
		t.Errorf("stats %+v, want one refusal", st)
	}
}

// lockedBuffer is a log sink safe for the writer goroutine and the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *lockedBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }

func lineHash(raw []byte) string {
	sum := sha256.Sum256(bytes.TrimSuffix(raw, []byte("\n")))
	return hex.EncodeToString(sum[:])
}

func rsaKey(tb testing.TB) crypto.Signer {
	tb.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}
