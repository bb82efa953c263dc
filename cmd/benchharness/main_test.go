package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	policies := []string{"-accounts-policy", "../../services/accounts/policy.yaml", "-payments-policy", "../../services/payments/policy.yaml"}
	tests := []struct {
		name       string
		args       []string
		wantErr    string // empty: success
		wantStdout string
	}{
		{name: "bad rounds", args: []string{"-rounds", "0"}, wantErr: "rounds 0"},
		{name: "unknown section", args: []string{"-sections", "reads,speed"}, wantErr: `section "speed"`},
		{name: "stray argument", args: []string{"now"}, wantErr: "unexpected arguments"},
		{name: "bad flag", args: []string{"-rounds", "many"}, wantErr: "invalid value"},
		{name: "bad service log level", args: []string{"-service-log-level", "loud"}, wantErr: "invalid value"},
		{name: "missing previous report", args: []string{"-previous", "/nonexistent/report.txt"}, wantErr: "no such file"},
		{name: "authz section", args: []string{"-quiet", "-sections", "authz"}, wantStdout: "\ntarget authz_decision_ns "},
		{name: "bad flood", args: []string{"-flood-conns", "0"}, wantErr: "flood conns 0"},
		{
			name:       "tiny flood",
			args:       []string{"-quiet", "-sections", "flood", "-flood-conns", "20", "-flood-sources", "2", "-flood-duration", "200ms", "-flood-calls", "2"},
			wantStdout: "\ntarget flood_fresh_call_max_ms ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), append(append([]string(nil), policies...), tt.args...), &stdout, &stderr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("run() = %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("run() = %v (stderr: %s)", err, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.wantStdout, stdout.String())
			}
		})
	}
}
