package grpcserver_test

import (
	"runtime"
	"testing"

	"mtlsbank/internal/grpcserver"
)

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestHeaderMemoryBounded attacks with one connection of an identity without any role:
// it opens many streams, each with a large header block (HEADERS + CONTINUATION), and
// never sends a message, so every stream it gets waits for its request. The server's live
// heap must grow by less than the per-connection bound of grpcserver's limits. Before
// the limits (grpc-go's 16 MiB header lists, 128 streams) the first case pinned 32 MiB,
// and 4 GiB would have been within reach of the same connection.
func TestHeaderMemoryBounded(t *testing.T) {
	const bound = 8 << 20 // a few MiB per connection, with room for the runtime
	tests := []struct {
		name      string
		streams   int
		headerPad int
	}{
		{name: "large header lists", streams: 128, headerPad: 256 << 10},
		{name: "more streams than allowed, headers under the limit", streams: 512, headerPad: 12 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, "tcp")
			c := h.rawH2(t, nobodyID)
			if _, gone := c.sync(t); gone {
				t.Fatal("the server hung up before the attack")
			}
			before := heapInUse()
			block := c.headerBlock(t, "/test.v1.TestService/Echo", tt.headerPad)
			sent := 0
			for i := range tt.streams {
				if err := c.writeHeaders(uint32(2*i+1), block); err != nil {
					t.Logf("stream %d: %v (the server hung up)", i, err)
					break
				}
				sent++
			}
			seen, gone := c.sync(t)
			growth := int64(heapInUse()) - int64(before)
			t.Logf("heap growth %d KiB after %d streams; server answered %v (hung up: %v)", growth>>10, sent, seen, gone)
			if growth > bound {
				t.Errorf("one connection of a role-less identity grew the server heap by %d MiB, want under %d MiB", growth>>20, bound>>20)
			}
		})
	}
}

// TestPartialMessageMemoryBounded: a unary request is read whole before any interceptor
// runs, so even a caller without a role can make the server hold, on every stream it may
// open, a request message it never finishes. It announces the largest message allowed
// (DefaultMaxRecvMsgSize) on every stream and sends all of it but one byte, respecting
// flow control; the server's heap grows by the per-connection bound at most.
func TestPartialMessageMemoryBounded(t *testing.T) {
	const bound = 8 << 20
	h := start(t, "tcp")
	c := h.rawH2(t, nobodyID)
	if _, gone := c.sync(t); gone {
		t.Fatal("the server hung up before the attack")
	}
	before := heapInUse()
	block := c.headerBlock(t, "/test.v1.TestService/Echo", 0)
	msg := grpcMessage(t, grpcserver.DefaultMaxRecvMsgSize-8)
	msg = msg[:len(msg)-1]
	// 60 KiB per round keeps within the 64 KiB stream window, and the sync after each
	// stream lets the server give the connection window back.
	for i := range 2 * grpcserver.DefaultMaxConcurrentStreams {
		id := uint32(2*i + 1)
		if err := c.writeHeaders(id, block); err != nil {
			t.Fatal(err)
		}
		rest := msg[:min(len(msg), 60<<10)]
		for len(rest) > 0 {
			n := min(len(rest), 16<<10)
			if err := c.fr.WriteData(id, false, rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		if seen, gone := c.sync(t); gone {
			t.Logf("the server hung up after %d streams: %v", i, seen)
			break
		}
	}
	growth := int64(heapInUse()) - int64(before)
	t.Logf("heap growth %d KiB", growth>>10)
	if growth > bound {
		t.Errorf("partial messages grew the server heap by %d MiB, want under %d MiB", growth>>20, bound>>20)
	}
}
