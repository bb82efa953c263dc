package service_test

import (
	"os"
	"path/filepath"
	"testing"
)

// TestOpenDataDirWarning: a data directory that exists with a mode open to the group or
// others is kept (its files are 0600) but named, with its mode, in a warning at start;
// a private one or one not created yet is not.
func TestOpenDataDirWarning(t *testing.T) {
	const msg = "data directory is open to group or others"
	tests := []struct {
		name     string
		mode     os.FileMode // 0: the directory does not exist
		wantWarn bool
	}{
		{name: "0755", mode: 0o755, wantWarn: true},
		{name: "0750", mode: 0o750, wantWarn: true},
		{name: "0700", mode: 0o700},
		{name: "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			dir := filepath.Join(t.TempDir(), "data")
			if tt.mode != 0 {
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(dir, tt.mode); err != nil {
					t.Fatal(err)
				}
			}
			f.cfg.DB = filepath.Join(dir, "test.db")
			r := f.start(t)
			warned := r.logs.contains(`"level":"WARN"`, msg, `"dir":"`+dir+`"`, `"mode":"0`+tt.name[1:]+`"`)
			if tt.mode == 0 {
				warned = r.logs.contains(msg)
			}
			if warned != tt.wantWarn {
				t.Errorf("warning naming %s: %v, want %v", dir, warned, tt.wantWarn)
			}
			if tt.mode != 0 {
				fi, err := os.Stat(dir)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != tt.mode {
					t.Errorf("directory mode %v, want it kept at %v", fi.Mode().Perm(), tt.mode)
				}
			}
		})
	}
}
