package grpcserver_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"mtlsbank/internal/grpcserver"
)

// TestStreamCapPerIdentity attacks the memory of the server with long-lived streams: any
// bank identity may call health Watch (the "authenticated" role), and each open stream
// holds memory as long as its connection lives. One identity, over several connections,
// gets at most its share; another identity still gets streams; a closed stream frees its
// slot; and the total cap holds over identities.
func TestStreamCapPerIdentity(t *testing.T) {
	const perIdentity, total = 4, 6
	h := start(t, "tcp", grpcserver.WithMaxStreams(perIdentity, total))
	conns := map[string][]*grpc.ClientConn{}
	for name, n := range map[string]int{"alice": 2, "bob": 1, "carol": 1} {
		cert := h.pki.Client(t, "spiffe://bank.local/customer/"+name)
		for range n {
			conns[name] = append(conns[name], h.connect(t, cert))
		}
	}
	const alice, bob, carol = "alice", "bob", "carol"

	// watch opens a health Watch stream and waits for its first answer, so that the
	// server's handler holds the slot; it returns the stream's cancel, or the error.
	watch := func(who string, conn int) (context.CancelFunc, error) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		s, err := healthpb.NewHealthClient(conns[who][conn]).Watch(ctx, &healthpb.HealthCheckRequest{})
		if err == nil {
			_, err = s.Recv()
		}
		if err != nil {
			cancel()
			return nil, err
		}
		return cancel, nil
	}
	var aliceStreams []context.CancelFunc
	for i := range perIdentity {
		cancel, err := watch(alice, i%2) // over two connections: the cap is per identity
		if err != nil {
			t.Fatalf("alice's stream %d: %v", i, err)
		}
		aliceStreams = append(aliceStreams, cancel)
	}
	if _, err := watch(alice, 0); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("alice's stream %d past the cap: %v, want ResourceExhausted", perIdentity, err)
	}
	if _, err := watch(alice, 1); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("alice's stream past the cap on her other connection: %v, want ResourceExhausted", err)
	}
	// Another identity is not starved by alice.
	var bobStreams []context.CancelFunc
	for i := range total - perIdentity {
		cancel, err := watch(bob, 0)
		if err != nil {
			t.Fatalf("bob's stream %d: %v", i, err)
		}
		bobStreams = append(bobStreams, cancel)
	}
	// The total is reached: carol, with none open, is refused too.
	if _, err := watch(carol, 0); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("carol's stream past the total cap: %v, want ResourceExhausted", err)
	}
	// Closing one of alice's streams frees a slot (the server notices the cancellation).
	aliceStreams[0]()
	waitFor(t, func() bool {
		cancel, err := watch(carol, 0)
		if err == nil {
			bobStreams = append(bobStreams, cancel)
		}
		return err == nil
	})
	if len(h.logs.find(map[string]any{"msg": "stream refused: too many open streams"})) == 0 {
		t.Error("no log record of the refused streams")
	}
}
