package service

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// warnOpenDataDirs logs a warning for each existing directory of the service's data
// files (the database's, the CRL state's) that the group or others may list or enter.
// Their files are 0600 whatever the directory, and a directory they may write to is
// refused when the database is opened; a readable one is kept on purpose (an operator
// may open it to monitoring), but said, since the names and sizes in it are visible.
// A directory that does not exist yet is created 0700 later.
func warnOpenDataDirs(logger *slog.Logger, cfg Config) {
	var dirs []string
	if cfg.DB != "" && !strings.Contains(cfg.DB, "://") {
		dirs = append(dirs, filepath.Dir(cfg.DB))
	}
	if cfg.CRL != "" {
		if d := filepath.Dir(cfg.CRLStatePath()); len(dirs) == 0 || filepath.Clean(d) != filepath.Clean(dirs[0]) {
			dirs = append(dirs, d)
		}
	}
	for _, dir := range dirs {
		fi, err := os.Stat(dir)
		if errors.Is(err, fs.ErrNotExist) || err == nil && !fi.IsDir() {
			continue // created 0700 later, or refused where it is used
		}
		if err != nil {
			logger.Warn("data directory cannot be checked", "dir", dir, "err", err.Error())
			continue
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			logger.Warn("data directory is open to group or others: its files are 0600, but their names and sizes show; chmod 700 it unless that is meant",
				"dir", dir, "mode", "0"+strconv.FormatUint(uint64(perm), 8))
		}
	}
}
