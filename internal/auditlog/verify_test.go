package auditlog_test

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"mtlsbank/internal/auditlog"
)

// trail is a real audit file: records 1-5, checkpoint 6, records 7-10 (9 is a
// denial), checkpoint 11 written by Close, and the checkpoint file naming 11.
type trail struct {
	lines      [][]byte // each with its newline
	checkpoint []byte
}

func newTrail(tb testing.TB, key crypto.Signer) trail {
	tb.Helper()
	path := auditPath(tb)
	s := open(tb, path, key, auditlog.WithCheckpoints(time.Hour, 1000))
	for i := 1; i <= 5; i++ {
		write(tb, s, record(writeMethod, true, fmt.Sprintf("rule %d", i)))
	}
	if err := s.Checkpoint(); err != nil {
		tb.Fatal(err)
	}
	for i := 7; i <= 10; i++ {
		write(tb, s, record(readMethod, i != 9, fmt.Sprintf("rule %d", i)))
	}
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
	tr := trail{lines: lines(tb, path)}
	var err error
	if tr.checkpoint, err = os.ReadFile(auditlog.CheckpointPath(path)); err != nil {
		tb.Fatal(err)
	}
	if len(tr.lines) != 11 || parse(tb, tr.lines[5]).Type != auditlog.TypeCheckpoint || parse(tb, tr.lines[10]).Type != auditlog.TypeCheckpoint {
		tb.Fatalf("unexpected trail:\n%s", bytes.Join(tr.lines, nil))
	}
	return tr
}

var (
	seqRe  = regexp.MustCompile(`^\{"seq":\d+,`)
	prevRe = regexp.MustCompile(`"prev":"[0-9a-f]{64}"\}\n$`)
)

// rechain rewrites seq and prev of every line, as an attacker without the signing key
// can: the chain is consistent again, the signatures no longer match it.
func rechain(lines [][]byte) [][]byte {
	out := make([][]byte, len(lines))
	var head [32]byte
	for i, l := range lines {
		l = seqRe.ReplaceAll(l, fmt.Appendf(nil, `{"seq":%d,`, i+1))
		l = prevRe.ReplaceAll(l, fmt.Appendf(nil, `"prev":"%s"}`+"\n", hex.EncodeToString(head[:])))
		head = sha256.Sum256(bytes.TrimSuffix(l, []byte("\n")))
		out[i] = l
	}
	return out
}

func edit(l []byte, old, new string) []byte {
	if !bytes.Contains(l, []byte(old)) {
		panic(fmt.Sprintf("%q not in %s", old, l))
	}
	return bytes.Replace(l, []byte(old), []byte(new), 1)
}

// TestVerifyTampering edits a real audit file in each way someone with write access to
// it, but without the signing key, can, and checks that Verify reports the first break,
// of the right kind, at the right record.
func TestVerifyTampering(t *testing.T) {
	key := newKey(t)
	base := newTrail(t, key)
	for _, tt := range []struct {
		name   string
		tamper func(tr *trail)
		key    crypto.Signer // verifying key; nil: the trail's
		kind   auditlog.BreakKind
		seq    uint64 // the record the break names
		line   int    // where it was found (0: the checkpoint file)
	}{
		{name: "intact", tamper: func(*trail) {}},
		{name: "edited record", kind: auditlog.Edited, seq: 3, line: 4,
			tamper: func(tr *trail) { tr.lines[2] = edit(tr.lines[2], `"decision":"allow"`, `"decision":"deny"`) }},
		{name: "edited denial turned into nothing", kind: auditlog.Edited, seq: 9, line: 10,
			tamper: func(tr *trail) { tr.lines[8] = edit(tr.lines[8], "customer/alice", "customer/bob") }},
		{name: "edited record, chain recomputed", kind: auditlog.BadSignature, seq: 6, line: 6,
			tamper: func(tr *trail) {
				tr.lines[2] = edit(tr.lines[2], `"code":"OK"`, `"code":"NotFound"`)
				tr.lines = rechain(tr.lines)
			}},
		{name: "edited last record, chain and checkpoint file recomputed", kind: auditlog.BadSignature, seq: 11, line: 11,
			tamper: func(tr *trail) {
				tr.lines[9] = edit(tr.lines[9], "rule 10", "rule X")
				tr.lines = rechain(tr.lines)
				tr.checkpoint = tr.lines[10]
			}},
		{name: "removed record", kind: auditlog.Removed, seq: 4, line: 4,
			tamper: func(tr *trail) { tr.lines = slices.Delete(tr.lines, 3, 4) }},
		{name: "removed denial, renumbered and rechained", kind: auditlog.BadSignature, seq: 10, line: 10,
			tamper: func(tr *trail) { tr.lines = rechain(slices.Delete(tr.lines, 8, 9)) }},
		{name: "removed first records", kind: auditlog.Removed, seq: 1, line: 1,
			tamper: func(tr *trail) { tr.lines = tr.lines[2:] }},
		{name: "reordered records", kind: auditlog.Reordered, seq: 4, line: 3,
			tamper: func(tr *trail) { tr.lines[2], tr.lines[3] = tr.lines[3], tr.lines[2] }},
		{name: "inserted record with the next seq and a valid link", kind: auditlog.Inserted, seq: 4, line: 5,
			tamper: func(tr *trail) {
				forged := rechain(append(slices.Clone(tr.lines[:3]), edit(tr.lines[3], "rule 4", "forged")))[3]
				tr.lines = slices.Insert(tr.lines, 3, forged)
			}},
		{name: "inserted copy of a record", kind: auditlog.Inserted, seq: 7, line: 8,
			tamper: func(tr *trail) { tr.lines = slices.Insert(tr.lines, 7, tr.lines[6]) }},
		{name: "inserted record, everything after renumbered and rechained", kind: auditlog.BadSignature, seq: 7, line: 7,
			tamper: func(tr *trail) {
				tr.lines = rechain(slices.Insert(tr.lines, 2, edit(tr.lines[2], "rule 3", "forged")))
			}},
		{name: "line of garbage", kind: auditlog.Malformed, line: 5,
			tamper: func(tr *trail) { tr.lines[4] = []byte("rm -rf /\n") }},
		{name: "truncated tail", kind: auditlog.Truncated, seq: 8, line: 0,
			tamper: func(tr *trail) { tr.lines = tr.lines[:7] }},
		{name: "truncated tail, checkpoint lines kept at the end", kind: auditlog.Truncated, seq: 7, line: 0,
			tamper: func(tr *trail) { tr.lines = tr.lines[:6] }},
		{name: "forged checkpoint file", kind: auditlog.BadSignature, seq: 12, line: 0,
			tamper: func(tr *trail) { tr.checkpoint = edit(tr.checkpoint, `"seq":11`, `"seq":12`) }},
		{name: "torn last line", kind: auditlog.Torn, line: 12,
			tamper: func(tr *trail) { tr.lines = append(tr.lines, []byte(`{"seq":12,"ti`)) }},
		{name: "another key", kind: auditlog.BadSignature, seq: 6, line: 6, key: newKey(t)},
		{name: "record of another service", kind: auditlog.Inserted, seq: 2, line: 2,
			tamper: func(tr *trail) { tr.lines[1] = edit(tr.lines[1], `"service":"accounts"`, `"service":"payments"`) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr := trail{lines: slices.Clone(base.lines), checkpoint: slices.Clone(base.checkpoint)}
			if tt.tamper != nil {
				tt.tamper(&tr)
			}
			path := filepath.Join(t.TempDir(), "accounts.audit.jsonl")
			if err := os.WriteFile(path, bytes.Join(tr.lines, nil), 0o600); err != nil {
				t.Fatal(err)
			}
			pub := key.Public()
			if tt.key != nil {
				pub = tt.key.Public()
			}
			rep, err := auditlog.Verify([]string{path}, pub, tr.checkpoint)
			if err != nil {
				t.Fatal(err)
			}
			if tt.kind == "" {
				if rep.Break != nil {
					t.Fatalf("intact trail reported broken: %v", rep.Break)
				}
				if rep.Records != 9 || rep.Checkpoints != 2 || rep.SignedSeq != 11 || rep.CheckpointFileSeq != 11 {
					t.Errorf("report %+v", rep)
				}
				return
			}
			b := rep.Break
			if b == nil {
				t.Fatalf("no break found; want %s at record %d", tt.kind, tt.seq)
			}
			wantFile := path
			if tt.line == 0 {
				wantFile = ""
			}
			if b.Kind != tt.kind || b.Seq != tt.seq || b.Line != tt.line || b.File != wantFile {
				t.Errorf("break %s (kind %s, seq %d, line %d)\nwant kind %s, seq %d, line %d", b, b.Kind, b.Seq, b.Line, tt.kind, tt.seq, tt.line)
			}
			if !strings.Contains(b.Error(), string(tt.kind)) {
				t.Errorf("message %q does not name the kind", b)
			}
		})
	}
}

// TestVerifyKnownLimits pins down what Verify cannot see, as docs/security.md says:
// records after the last checkpoint can be cut off together with an older checkpoint
// file put back, and without the checkpoint file a cut at a checkpoint goes unseen.
func TestVerifyKnownLimits(t *testing.T) {
	key := newKey(t)
	base := newTrail(t, key)
	path := filepath.Join(t.TempDir(), "accounts.audit.jsonl")
	if err := os.WriteFile(path, bytes.Join(base.lines[:6], nil), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, cp := range map[string][]byte{"older checkpoint file": base.lines[5], "no checkpoint file": nil} {
		rep, err := auditlog.Verify([]string{path}, key.Public(), cp)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Break != nil || rep.LastSeq != 6 {
			t.Errorf("%s: %+v", name, rep)
		}
	}
}

// TestVerifyFileOrder: the files of a rotated trail may be given in any order.
func TestVerifyFileOrder(t *testing.T) {
	path, key := auditPath(t), newKey(t)
	s := open(t, path, key, auditlog.WithMaxFileSize(1<<10), auditlog.WithFlushInterval(0))
	for i := range 20 {
		write(t, s, record(writeMethod, true, strings.Repeat("y", i)))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	files, err := auditlog.RotatedFiles(path)
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, path)
	slices.Reverse(files)
	cp, err := os.ReadFile(auditlog.CheckpointPath(path))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := auditlog.Verify(files, key.Public(), cp)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Break != nil || rep.Records != 20 || rep.Files[len(rep.Files)-1] != path {
		t.Errorf("report %+v", rep)
	}
	// Leaving the oldest file out is a break.
	rep, err = auditlog.Verify(files[:len(files)-1], key.Public(), cp)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Break == nil || rep.Break.Kind != auditlog.Removed || rep.Break.Seq != 1 {
		t.Errorf("without the oldest file: %+v", rep.Break)
	}
}
