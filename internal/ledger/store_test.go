package ledger_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"mtlsbank/internal/ledger"
)

// TestRunSavepoint checks the statements RunSavepoint has its store run and what it
// returns: fn's error as it is, unless a statement failed, whose error is returned
// instead, so that a broken transaction is never taken for fn's refusal.
func TestRunSavepoint(t *testing.T) {
	refused := errors.New("refused")
	broken := errors.New("broken")
	const (
		begin    = ledger.SavepointBegin
		rollback = ledger.SavepointRollback
		release  = ledger.SavepointRelease
	)
	tests := []struct {
		name      string
		fnErr     error
		failAt    ledger.SavepointStep
		fail      bool
		wantSteps []ledger.SavepointStep
		wantFn    bool
		want      error
		notWant   error
	}{
		{name: "fn succeeds", wantSteps: []ledger.SavepointStep{begin, release}, wantFn: true},
		{name: "fn refuses", fnErr: refused, wantSteps: []ledger.SavepointStep{begin, rollback, release}, wantFn: true, want: refused},
		{name: "begin fails", fail: true, failAt: begin, wantSteps: []ledger.SavepointStep{begin}, want: broken},
		{name: "release fails", fail: true, failAt: release, wantSteps: []ledger.SavepointStep{begin, release}, wantFn: true, want: broken},
		{name: "rollback fails", fnErr: refused, fail: true, failAt: rollback,
			wantSteps: []ledger.SavepointStep{begin, rollback}, wantFn: true, want: broken, notWant: refused},
		{name: "release after rollback fails", fnErr: refused, fail: true, failAt: release,
			wantSteps: []ledger.SavepointStep{begin, rollback, release}, wantFn: true, want: broken, notWant: refused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var steps []ledger.SavepointStep
			exec := func(_ context.Context, step ledger.SavepointStep) error {
				steps = append(steps, step)
				if tt.fail && step == tt.failAt {
					return broken
				}
				return nil
			}
			ran := false
			err := ledger.RunSavepoint(context.Background(), exec, func() error { ran = true; return tt.fnErr })
			if !slices.Equal(steps, tt.wantSteps) {
				t.Errorf("steps = %v, want %v", steps, tt.wantSteps)
			}
			if ran != tt.wantFn {
				t.Errorf("fn ran = %v, want %v", ran, tt.wantFn)
			}
			switch {
			case tt.want == nil && err != nil:
				t.Errorf("RunSavepoint = %v, want nil", err)
			case tt.want == refused && err != refused:
				t.Errorf("RunSavepoint = %v, want fn's error as it is", err)
			case !errors.Is(err, tt.want):
				t.Errorf("RunSavepoint = %v, want %v", err, tt.want)
			case tt.notWant != nil && errors.Is(err, tt.notWant):
				t.Errorf("RunSavepoint = %v: a broken savepoint passed for fn's refusal", err)
			}
		})
	}
}
