package auditlog

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"
)

// BreakKind says how an audit trail is broken.
type BreakKind string

// The kinds of break Verify reports.
const (
	Malformed    BreakKind = "malformed"     // a line is not a record (edited into garbage, or foreign)
	Torn         BreakKind = "torn"          // the last line has no end: a crash mid-write (the service cuts it at its next start)
	Edited       BreakKind = "edited"        // a record no longer hashes to the link its successor holds
	Removed      BreakKind = "removed"       // records are missing: the seq jumps
	Reordered    BreakKind = "reordered"     // records are out of order
	Inserted     BreakKind = "inserted"      // a record that the writer did not write: a second record with the same seq
	BadSignature BreakKind = "bad-signature" // a checkpoint's signature does not verify: the chain before it was rewritten, or another key signed
	Truncated    BreakKind = "truncated"     // the trail ends before the record its checkpoint file names
	Rewritten    BreakKind = "rewritten"     // the checkpoint file's record differs from the trail's record at that seq
)

// Break is the first place where an audit trail is not what its writer wrote.
type Break struct {
	Kind   BreakKind `json:"kind"`
	File   string    `json:"file,omitempty"` // where it was found ("" for the checkpoint file as a whole)
	Line   int       `json:"line,omitempty"` // line number in File, from 1
	Seq    uint64    `json:"seq,omitempty"`  // the record concerned, when known
	Detail string    `json:"detail"`
}

func (b *Break) Error() string {
	if b.File == "" {
		return fmt.Sprintf("%s: %s", b.Kind, b.Detail)
	}
	return fmt.Sprintf("%s:%d: %s: %s", b.File, b.Line, b.Kind, b.Detail)
}

// Report is what Verify found.
type Report struct {
	Files       []string // the files, in chain order
	Service     string
	Records     int    // call records
	Checkpoints int    // signed checkpoints that verified
	LastSeq     uint64 // last line of the trail
	// SignedSeq is the position of the last checkpoint that verified; lines after it
	// are protected by the chain only, until the next checkpoint.
	SignedSeq uint64
	// CheckpointFileSeq is the position the checkpoint file names (0: none given).
	CheckpointFileSeq uint64
	// Break is the first break, nil for an intact trail.
	Break *Break
}

type rawLine struct {
	file string
	n    int
	raw  []byte
	line Line
	err  error
}

// Verify checks the audit trail made of files (in any order: they are put in chain
// order by the seq of their first line) against the public key pub: every line parses,
// seqs follow from 1 without gap, each line holds the hash of the line before it, every
// checkpoint's signature verifies. If checkpoint (the checkpoint file's content) is not
// nil, its signature must verify and the trail must hold exactly that line at its seq:
// a trail that ends before it was cut off. It reports the first break in Report.Break;
// the error is for files it could not read.
func Verify(files []string, pub crypto.PublicKey, checkpoint []byte) (Report, error) {
	var rep Report
	keyID, err := KeyID(pub)
	if err != nil {
		return rep, err
	}
	lines, order, brk, err := readTrail(files)
	if err != nil {
		return rep, err
	}
	rep.Files = order
	counts := make(map[uint64]int, len(lines))
	for _, l := range lines {
		if l.err == nil {
			counts[l.line.Seq]++
		}
	}
	var (
		exp     uint64 = 1
		head    [hashSize]byte
		prevRaw *rawLine
	)
	for i := range lines {
		l := &lines[i]
		at := func(kind BreakKind, seq uint64, format string, args ...any) Report {
			rep.Break = &Break{Kind: kind, File: l.file, Line: l.n, Seq: seq, Detail: fmt.Sprintf(format, args...)}
			return rep
		}
		if l.err != nil {
			return at(Malformed, 0, "%v", l.err), nil
		}
		if rep.Service == "" {
			rep.Service = l.line.Service
		}
		seq, link := l.line.Seq, hex.EncodeToString(head[:])
		switch {
		case l.line.Service != rep.Service:
			return at(Inserted, seq, "a record of service %q in the trail of %q", l.line.Service, rep.Service), nil
		case seq == exp && l.line.Prev == link:
		case seq == exp && counts[seq] > 1:
			return at(Inserted, seq, "two records claim seq %d", seq), nil
		case seq == exp && prevRaw == nil:
			return at(Edited, seq, "the first record does not start the chain (its prev is not zero)"), nil
		case seq == exp:
			return at(Edited, seq-1, "record %d (%s:%d) no longer hashes to the link record %d holds: it, or this record's link, was changed",
				seq-1, prevRaw.file, prevRaw.n, seq), nil
		case seq > exp && exp == 1 && prevRaw == nil:
			return at(Removed, exp, "the trail starts at record %d: records 1 to %d are missing (an earlier file not given?)", seq, seq-1), nil
		case seq > exp:
			later := 0
			for s := range counts {
				if s >= exp && s < seq {
					later++
				}
			}
			if later > 0 {
				return at(Reordered, seq, "record %d comes where record %d should", seq, exp), nil
			}
			return at(Removed, exp, "records %d to %d are missing", exp, seq-1), nil
		case counts[seq] > 1:
			return at(Inserted, seq, "a second record claims seq %d", seq), nil
		default:
			return at(Reordered, seq, "record %d comes after record %d", seq, exp-1), nil
		}
		if l.line.Type == TypeCheckpoint {
			if reason := checkSignature(l.line, pub, keyID); reason != "" {
				return at(BadSignature, seq, "checkpoint %d: %s", seq, reason), nil
			}
			rep.Checkpoints++
			rep.SignedSeq = seq
		} else {
			rep.Records++
		}
		head, exp, prevRaw = lineHash(l.raw), seq+1, l
		rep.LastSeq = seq
	}
	if brk != nil {
		rep.Break = brk
		return rep, nil
	}
	if checkpoint != nil {
		rep.Break = checkCheckpointFile(&rep, lines, checkpoint, pub, keyID)
	}
	return rep, nil
}

// checkCheckpointFile checks the checkpoint file's line against the trail.
func checkCheckpointFile(rep *Report, lines []rawLine, checkpoint []byte, pub crypto.PublicKey, keyID string) *Break {
	raw := bytes.TrimSuffix(checkpoint, []byte("\n"))
	cp, err := ParseLine(raw)
	switch {
	case err != nil:
		return &Break{Kind: Malformed, Detail: fmt.Sprintf("checkpoint file: %v", err)}
	case cp.Type != TypeCheckpoint:
		return &Break{Kind: Malformed, Detail: "checkpoint file: not a checkpoint"}
	}
	if reason := checkSignature(cp, pub, keyID); reason != "" {
		return &Break{Kind: BadSignature, Seq: cp.Seq, Detail: "checkpoint file: " + reason}
	}
	rep.CheckpointFileSeq = cp.Seq
	if cp.Seq > rep.LastSeq {
		return &Break{Kind: Truncated, Seq: rep.LastSeq + 1,
			Detail: fmt.Sprintf("the trail ends at record %d but its checkpoint file names record %d: records %d to %d were cut off",
				rep.LastSeq, cp.Seq, rep.LastSeq+1, cp.Seq)}
	}
	for _, l := range lines {
		if l.line.Seq == cp.Seq {
			if !bytes.Equal(l.raw, raw) {
				return &Break{Kind: Rewritten, File: l.file, Line: l.n, Seq: cp.Seq,
					Detail: fmt.Sprintf("record %d differs from the checkpoint file's: the trail was rewritten up to there", cp.Seq)}
			}
			return nil
		}
	}
	return &Break{Kind: Removed, Seq: cp.Seq, Detail: fmt.Sprintf("the checkpoint file's record %d is not in the trail", cp.Seq)}
}

// checkSignature returns why a checkpoint line does not verify, or "".
func checkSignature(l Line, pub crypto.PublicKey, keyID string) string {
	if l.Key != keyID {
		return fmt.Sprintf("signed by key %s, not by the key given (%s)", l.Key, keyID)
	}
	sig, err := base64.StdEncoding.DecodeString(l.Sig)
	if err != nil {
		return "signature is not base64"
	}
	if !verifySignature(pub, checkpointMessage(l.Service, l.Seq, l.Time, l.Prev), sig) {
		return "signature does not verify: the records before it were rewritten, or it was forged"
	}
	return ""
}

// readTrail reads files and returns their lines in chain order (files sorted by the
// seq of their first line), and a Torn break if the last file's last line has no end.
func readTrail(files []string) ([]rawLine, []string, *Break, error) {
	type file struct {
		name  string
		lines []rawLine
		torn  []byte
	}
	var all []file
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, nil, nil, err
		}
		f := file{name: name}
		n := 0
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				f.torn = data
				break
			}
			n++
			raw := data[:i]
			data = data[i+1:]
			l, err := ParseLine(raw)
			f.lines = append(f.lines, rawLine{file: name, n: n, raw: raw, line: l, err: err})
		}
		if len(f.lines) > 0 || f.torn != nil {
			all = append(all, f)
		}
	}
	first := func(f file) uint64 {
		if len(f.lines) == 0 || f.lines[0].err != nil {
			return ^uint64(0)
		}
		return f.lines[0].line.Seq
	}
	slices.SortStableFunc(all, func(a, b file) int { return cmpUint(first(a), first(b)) })
	var (
		lines []rawLine
		order []string
		brk   *Break
	)
	for i, f := range all {
		lines = append(lines, f.lines...)
		order = append(order, f.name)
		if f.torn != nil && brk == nil {
			kind, what := Torn, "the last line has no end (a crash mid-write; the service cuts it off when it starts)"
			if i != len(all)-1 {
				kind, what = Malformed, "a line without end inside the trail"
			}
			brk = &Break{Kind: kind, File: f.name, Line: len(f.lines) + 1, Detail: fmt.Sprintf("%s: %q", what, truncateText(string(f.torn), 40))}
		}
	}
	return lines, order, brk, nil
}

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}
