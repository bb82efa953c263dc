package auditlog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// tailChunk is how much of a file's end recovery reads; a line is far shorter.
const tailChunk = 1 << 20

// recover opens the audit file and sets the chain's state from its last complete line
// (or from the newest rotated file's, when it is empty).
func (s *Sink) recover() error {
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	s.file = f
	info, err := f.Stat()
	if err != nil {
		return err
	}
	last, size, err := readTail(f, info.Size())
	if err != nil {
		return err
	}
	if size < info.Size() {
		if err := f.Truncate(size); err != nil {
			return fmt.Errorf("cut torn last line: %w", err)
		}
		if err := s.cfg.sync(f); err != nil {
			return fmt.Errorf("cut torn last line: sync: %w", err)
		}
		s.cfg.logger.Warn("audit file: torn last line cut off (a crash in the middle of a write); the chain goes on from the last complete record",
			"file", s.path, "bytes", info.Size()-size)
	}
	s.size = size
	from := s.path
	if size > 0 {
		first, err := firstLine(f)
		if err != nil {
			return err
		}
		s.firstSeq = first.Seq
	} else if from, last, err = s.lastRotated(); err != nil {
		return err
	}
	if last != nil {
		l, err := ParseLine(last)
		if err != nil {
			return fmt.Errorf("last record of %s unreadable (run bankctl audit verify): %w", from, err)
		}
		s.seq, s.head = l.Seq, lineHash(last)
		if l.Type != TypeCheckpoint {
			s.sinceCheckpoint = 1 // records after the last checkpoint: the next tick signs them
		}
	}
	if err := s.checkCheckpoint(); err != nil {
		return err
	}
	s.cfg.logger.Info("audit chain recovered", "file", s.path, "from", from, "seq", s.seq, "head", string(appendHex(nil, s.head[:])))
	return nil
}

// readTail returns the last complete line of f (nil if none) and the size f has
// without a torn last line (one without its newline).
func readTail(f *os.File, size int64) (last []byte, complete int64, err error) {
	if size == 0 {
		return nil, 0, nil
	}
	off := max(0, size-tailChunk)
	buf := make([]byte, size-off)
	if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, err
	}
	i := bytes.LastIndexByte(buf, '\n')
	switch {
	case i < 0 && off == 0:
		return nil, 0, nil // one torn line and nothing before it
	case i < 0:
		return nil, 0, fmt.Errorf("no line end in the last %d bytes: not an audit file", tailChunk)
	}
	return lastLine(buf[:i+1]), off + int64(i) + 1, nil
}

// firstLine parses the first line of f.
func firstLine(f *os.File) (Line, error) {
	buf := make([]byte, 64<<10)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return Line{}, err
	}
	i := bytes.IndexByte(buf[:n], '\n')
	if i < 0 {
		return Line{}, errors.New("first line too long: not an audit file")
	}
	l, err := ParseLine(buf[:i])
	if err != nil {
		return Line{}, fmt.Errorf("first record unreadable: %w", err)
	}
	return l, nil
}

// lastRotated returns the newest rotated file and its last line, or no line when
// there is none.
func (s *Sink) lastRotated() (string, []byte, error) {
	files, err := RotatedFiles(s.path)
	if err != nil || len(files) == 0 {
		return s.path, nil, err
	}
	name := files[len(files)-1]
	f, err := os.Open(name)
	if err != nil {
		return name, nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return name, nil, err
	}
	last, size, err := readTail(f, info.Size())
	if err == nil && size != info.Size() {
		err = errors.New("rotated file ends with a torn line")
	}
	if err != nil {
		return name, nil, fmt.Errorf("%s: %w", name, err)
	}
	return name, last, nil
}

// RotatedFiles lists the rotated files of the audit file path (RotatedPath), oldest
// first.
func RotatedFiles(path string) ([]string, error) {
	base, ext := trimExt(path), filepath.Ext(path)
	matches, err := filepath.Glob(globEscape(base) + ".*" + globEscape(ext))
	if err != nil {
		return nil, err
	}
	type file struct {
		name string
		seq  uint64
	}
	var files []file
	for _, m := range matches {
		mid := strings.TrimSuffix(strings.TrimPrefix(m, base+"."), ext)
		if seq, err := strconv.ParseUint(mid, 10, 64); err == nil && seq > 0 {
			files = append(files, file{m, seq})
		}
	}
	slices.SortFunc(files, func(a, b file) int { return cmpUint(a.seq, b.seq) })
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.name
	}
	return names, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// checkCheckpoint refuses a trail that ends before the record its checkpoint file
// names: its tail was cut off while the service was down.
func (s *Sink) checkCheckpoint() error {
	data, err := os.ReadFile(s.cfg.checkpointPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	cp, err := ParseLine(bytes.TrimSuffix(data, []byte("\n")))
	if err != nil {
		return fmt.Errorf("checkpoint file %s: %w", s.cfg.checkpointPath, err)
	}
	if cp.Seq > s.seq {
		return fmt.Errorf("%w: the checkpoint file %s names record %d, the trail ends at %d (run bankctl audit verify)",
			ErrBehindCheckpoint, s.cfg.checkpointPath, cp.Seq, s.seq)
	}
	s.checkpointSeq.Store(cp.Seq)
	return nil
}
