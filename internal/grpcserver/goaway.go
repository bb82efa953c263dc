package grpcserver

import (
	"encoding/binary"
	"io"
	"math"
	"sync"
)

// HTTP/2 framing (RFC 9113, section 4.1): a 9-byte header, then the payload.
const (
	frameHeaderLen   = 9
	frameHeaders     = 0x1
	framePushPromise = 0x5
	frameGoAway      = 0x7
	frameContinue    = 0x9
	flagEndHeaders   = 0x4
)

// gracefulGoAway is the frame grpc-go itself sends first when it drains a connection
// (GracefulStop, MaxConnectionAge): GOAWAY, last stream ID 2^31-1, NO_ERROR. A grpc-go
// client takes it as "open no new stream here": it stops picking the connection,
// reconnects, and leaves the streams it has to finish (internal/transport
// http2_client.go, handleGoAway: no stream is closed below the first GOAWAY's ID).
func gracefulGoAway() []byte {
	f := make([]byte, frameHeaderLen+8)
	f[2] = 8 // payload length
	f[3] = frameGoAway
	binary.BigEndian.PutUint32(f[frameHeaderLen:], math.MaxInt32)
	return f // error code NO_ERROR (0), stream 0, no flags
}

// frameWriter passes the bytes grpc-go's server transport writes to w unchanged while
// following the HTTP/2 frame boundaries in them, so that one frame of our own can be
// injected between two frames. grpc-go buffers and flushes its frames in arbitrary
// chunks, so a boundary can fall anywhere in a Write, or between Writes. A frame is
// never injected inside a header block (HEADERS or PUSH_PROMISE without END_HEADERS and
// its CONTINUATIONs, which must be contiguous), nor before the server's first frame
// (its SETTINGS, the connection preface).
type frameWriter struct {
	mu sync.Mutex
	w  io.Writer

	hdr       [frameHeaderLen]byte
	hdrN      int    // bytes of the current frame header seen so far
	remaining uint32 // payload bytes of the current frame still to come
	inBlock   bool   // inside a header block that END_HEADERS has not closed
	started   bool   // the first frame header has gone through
	pending   []byte // the frame to inject at the next boundary
	injected  bool
}

func newFrameWriter(w io.Writer) *frameWriter { return &frameWriter{w: w} }

// atBoundary reports whether a frame may be written now.
func (f *frameWriter) atBoundary() bool {
	return f.started && f.hdrN == 0 && f.remaining == 0 && !f.inBlock
}

// step follows b, the next bytes of the stream, up to the end of the current frame
// header or payload, and returns how many bytes it took (at least one for a non-empty b).
func (f *frameWriter) step(b []byte) int {
	if f.remaining > 0 {
		n := uint32(min(len(b), math.MaxUint32))
		n = min(n, f.remaining)
		f.remaining -= n
		return int(n)
	}
	n := copy(f.hdr[f.hdrN:], b)
	f.hdrN += n
	if f.hdrN == frameHeaderLen {
		f.hdrN, f.started = 0, true
		f.remaining = uint32(f.hdr[0])<<16 | uint32(f.hdr[1])<<8 | uint32(f.hdr[2])
		switch typ, flags := f.hdr[3], f.hdr[4]; typ {
		case frameHeaders, framePushPromise:
			f.inBlock = flags&flagEndHeaders == 0
		case frameContinue:
			if flags&flagEndHeaders != 0 {
				f.inBlock = false
			}
		}
	}
	return n
}

// Write writes p, injecting the pending frame at the first boundary it reaches.
func (f *frameWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	done := 0
	for done < len(p) {
		if err := f.flushPending(); err != nil {
			return done, err
		}
		end := done
		if f.pending == nil {
			for end < len(p) {
				end += f.step(p[end:])
			}
		} else {
			end += f.step(p[end:])
			for end < len(p) && !f.atBoundary() {
				end += f.step(p[end:])
			}
		}
		n, err := f.w.Write(p[done:end])
		done += n
		if err != nil {
			return done, err
		}
	}
	return done, f.flushPending()
}

// flushPending writes the pending frame if the stream is at a boundary.
func (f *frameWriter) flushPending() error {
	if f.pending == nil || !f.atBoundary() {
		return nil
	}
	frame := f.pending
	f.pending = nil
	_, err := f.w.Write(frame)
	return err
}

// inject writes frame at once if the stream is at a boundary, or with the next Write
// that reaches one. Only the first call has an effect; it reports whether it had.
func (f *frameWriter) inject(frame []byte) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.injected {
		return false, nil
	}
	f.injected = true
	f.pending = frame
	return true, f.flushPending()
}
