package pgstore

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// commitChannel is the LISTEN/NOTIFY channel on which Update announces commits
// that created entries. Channels are per database.
const commitChannel = "mtlsbank_ledger_commits"

// Reconnection backoff of FollowCommits.
const (
	followMinBackoff = 50 * time.Millisecond
	followMaxBackoff = 5 * time.Second
)

// FollowCommits implements ledger.CommitFeed with LISTEN on a connection of
// its own: every commit with entries, by any replica, wakes the ledger's
// watchers, which then read the entries by sequence. It wakes them once after
// each (re)connection, since notifications sent while it was not listening
// are lost; a dropped connection is retried with backoff until ctx ends.
func (s *Store) FollowCommits(ctx context.Context, wake func()) {
	backoff := followMinBackoff
	for ctx.Err() == nil {
		listened, _ := s.listenOnce(ctx, wake)
		if listened {
			backoff = followMinBackoff
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, followMaxBackoff)
	}
}

// listenOnce connects, listens and wakes on each notification until the
// connection fails or ctx ends. listened reports that LISTEN took effect.
func (s *Store) listenOnce(ctx context.Context, wake func()) (listened bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, s.listen.Copy())
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+commitChannel); err != nil {
		return false, err
	}
	wake() // commits before the LISTEN were not announced to this connection
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return true, err
		}
		wake()
	}
}
