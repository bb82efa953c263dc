package grpcserver

import (
	"bytes"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// frameStream is what a grpc-go server writes, frame by frame: SETTINGS first, a header
// block split over HEADERS and two CONTINUATIONs, a DATA frame larger than any buffer, a
// header block in one HEADERS frame, empty frames, a PING.
func frameStream(tb testing.TB) []byte {
	tb.Helper()
	var buf bytes.Buffer
	fr := http2.NewFramer(&buf, nil)
	big := bytes.Repeat([]byte{0xAB}, 100<<10)
	steps := []func() error{
		func() error { return fr.WriteSettings(http2.Setting{ID: http2.SettingMaxFrameSize, Val: 16384}) },
		func() error { return fr.WriteSettingsAck() },
		func() error {
			return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: bytes.Repeat([]byte{1}, 300)})
		},
		func() error { return fr.WriteContinuation(1, false, bytes.Repeat([]byte{2}, 200)) },
		func() error { return fr.WriteContinuation(1, true, bytes.Repeat([]byte{3}, 100)) },
		func() error { return fr.WriteData(1, false, big) },
		func() error { return fr.WriteData(1, false, nil) },
		func() error {
			return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{4, 5}, EndHeaders: true, EndStream: true})
		},
		func() error { return fr.WritePing(true, [8]byte{9}) },
		func() error { return fr.WriteWindowUpdate(0, 1000) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			tb.Fatal(err)
		}
	}
	return buf.Bytes()
}

// frameSummary reads every frame of b and describes it; the GOAWAY frames are counted,
// checked to be graceful, and must never fall inside a header block.
func frameSummary(tb testing.TB, b []byte) (frames []string, goaways int) {
	tb.Helper()
	fr := http2.NewFramer(nil, bytes.NewReader(b))
	fr.SetMaxReadFrameSize(1 << 20)
	inBlock := false
	for {
		f, err := fr.ReadFrame()
		if errors.Is(err, io.EOF) {
			return frames, goaways
		}
		if err != nil {
			tb.Fatalf("frame %d: %v (the stream is corrupt)", len(frames), err)
		}
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			if inBlock {
				tb.Fatal("GOAWAY inside a header block")
			}
			if f.LastStreamID != math.MaxInt32 || f.ErrCode != http2.ErrCodeNo {
				tb.Fatalf("GOAWAY last stream %d code %v, want 2^31-1 NO_ERROR", f.LastStreamID, f.ErrCode)
			}
			goaways++
			continue
		case *http2.HeadersFrame:
			inBlock = !f.HeadersEnded()
		case *http2.ContinuationFrame:
			inBlock = !f.HeadersEnded()
		}
		h := f.Header()
		frames = append(frames, h.Type.String()+"/"+string(rune('0'+h.Flags&0xf)))
	}
}

// chunked writes b to w in pieces of the sizes next returns.
func chunked(tb testing.TB, w io.Writer, b []byte, next func() int) {
	tb.Helper()
	for len(b) > 0 {
		n := min(max(next(), 1), len(b))
		if m, err := w.Write(b[:n]); err != nil || m != n {
			tb.Fatalf("Write = %d, %v; want %d", m, err, n)
		}
		b = b[n:]
	}
}

// TestFrameWriterInjectsAtBoundaries: whatever the chunking of grpc-go's writes and
// wherever the drain falls, the output is the input's frames, in order and intact, plus
// exactly one graceful GOAWAY between two frames, never inside a header block nor before
// the first frame.
func TestFrameWriterInjectsAtBoundaries(t *testing.T) {
	stream := frameStream(t)
	want, _ := frameSummary(t, stream)
	rng := rand.New(rand.NewPCG(1, 2))
	chunkings := []struct {
		name string
		next func() int
	}{
		{"whole", func() int { return len(stream) }},
		{"one byte", func() int { return 1 }},
		{"seven bytes", func() int { return 7 }},
		{"random", func() int { return 1 + rng.IntN(20000) }},
	}
	for _, c := range chunkings {
		for _, at := range []int{0, 1, 9, 20, 40, 350, 700, 5000, 60000, len(stream) - 3, len(stream)} {
			t.Run(c.name+"/drain at "+strconv.Itoa(at), func(t *testing.T) {
				var out bytes.Buffer
				fw := newFrameWriter(&out)
				chunked(t, fw, stream[:at], c.next)
				if sent, err := fw.inject(gracefulGoAway()); !sent || err != nil {
					t.Fatalf("inject = %v, %v", sent, err)
				}
				if sent, _ := fw.inject(gracefulGoAway()); sent {
					t.Fatal("a second inject had an effect")
				}
				chunked(t, fw, stream[at:], c.next)
				got, goaways := frameSummary(t, out.Bytes())
				if goaways != 1 {
					t.Errorf("%d GOAWAY frames, want 1", goaways)
				}
				if len(got) != len(want) {
					t.Fatalf("frames %v, want %v", got, want)
				}
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("frame %d is %s, want %s", i, got[i], want[i])
					}
				}
				if out.Len() != len(stream)+len(gracefulGoAway()) {
					t.Errorf("%d bytes out, want %d", out.Len(), len(stream)+len(gracefulGoAway()))
				}
			})
		}
	}
}

// TestFrameWriterConcurrentDrain: the drain comes from a timer goroutine while the
// transport writes; the output stays a valid frame stream with one GOAWAY (run with -race).
func TestFrameWriterConcurrentDrain(t *testing.T) {
	stream := frameStream(t)
	for i := range 50 {
		var out bytes.Buffer
		fw := newFrameWriter(&out)
		rng := rand.New(rand.NewPCG(uint64(i), 7))
		var wg sync.WaitGroup
		wg.Go(func() { chunked(t, fw, stream, func() int { return 1 + rng.IntN(3000) }) })
		wg.Go(func() {
			if _, err := fw.inject(gracefulGoAway()); err != nil {
				t.Error(err)
			}
		})
		wg.Wait()
		if _, goaways := frameSummary(t, out.Bytes()); goaways != 1 {
			t.Fatalf("run %d: %d GOAWAY frames, want 1", i, goaways)
		}
	}
}

// TestFrameWriterWriteError: a failing connection reports its error and how much of p
// it took, as io.Writer requires.
func TestFrameWriterWriteError(t *testing.T) {
	boom := errors.New("boom")
	fw := newFrameWriter(failingWriter{after: 10, err: boom})
	n, err := fw.Write(frameStream(t))
	if !errors.Is(err, boom) || n != 10 {
		t.Fatalf("Write = %d, %v; want 10, boom", n, err)
	}
}

type failingWriter struct {
	after int
	err   error
}

func (f failingWriter) Write(p []byte) (int, error) {
	if len(p) > f.after {
		return f.after, f.err
	}
	return len(p), nil
}

// TestDrainTime: the drain comes lead before the NotAfter (10% of the lifetime, at least
// the minimum), halfway to it for a connection opened after that point, never with less
// than a second to go.
func TestDrainTime(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		now      time.Time
		notAfter time.Time
		lifetime time.Duration
		minLead  time.Duration
		want     time.Time
		wantOK   bool
	}{
		{"1h certificate: 10% of it", t0, t0.Add(time.Hour), time.Hour, 5 * time.Second, t0.Add(54 * time.Minute), true},
		{"3s certificate: the minimum lead", t0, t0.Add(3 * time.Second), 3 * time.Second, time.Second, t0.Add(2 * time.Second), true},
		{"opened inside the lead: halfway", t0, t0.Add(24 * time.Hour), 90 * 24 * time.Hour, 5 * time.Second, t0.Add(12 * time.Hour), true},
		{"opened at the drain point: halfway", t0.Add(54 * time.Minute), t0.Add(time.Hour), time.Hour, 5 * time.Second, t0.Add(57 * time.Minute), true},
		{"under two seconds left: no drain", t0, t0.Add(1500 * time.Millisecond), time.Hour, 5 * time.Second, t0.Add(750 * time.Millisecond), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := drainTime(tt.now, tt.notAfter, tt.lifetime, tt.minLead)
			if !got.Equal(tt.want) || ok != tt.wantOK {
				t.Errorf("drainTime = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
