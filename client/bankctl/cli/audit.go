package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"mtlsbank/internal/auditlog"
)

func (a *app) auditCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Check a service's audit trail offline",
		Long: `Each service appends one JSON line per call to its audit trail (--audit-file, default
data/NAME.audit.jsonl), chains the lines with SHA-256 and signs a checkpoint of the chain
every few seconds with its audit key (--audit-key). The audit commands read those files on
this machine: nothing is dialed. See docs/audit.md.`,
	}
	cmd.AddCommand(a.auditVerifyCommand())
	return cmd
}

// verifyJSON is what --output json prints for a verification.
type verifyJSON struct {
	OK                bool            `json:"ok"`
	Service           string          `json:"service"`
	Files             []string        `json:"files"`
	Records           int             `json:"records"`
	Checkpoints       int             `json:"checkpoints"`
	LastSeq           uint64          `json:"last_seq"`
	SignedSeq         uint64          `json:"signed_seq"`
	CheckpointFile    string          `json:"checkpoint_file,omitempty"`
	CheckpointFileSeq uint64          `json:"checkpoint_file_seq,omitempty"`
	Break             *auditlog.Break `json:"break,omitempty"`
}

func (a *app) auditVerifyCommand() *cobra.Command {
	var pubPath, checkpointPath string
	var noCheckpoint bool
	cmd := &cobra.Command{
		Use:   "verify FILE...",
		Short: "Check an audit trail's hash chain and signatures, and report the first break",
		Long: `verify reads the audit files given (the active file and its rotated predecessors, in any
order) and checks that every line is a record, that the records follow each other from
seq 1 without gap, that each holds the hash of the one before, and that every signed
checkpoint verifies with the service's audit public key. It then checks the checkpoint
file, which the service replaces at each checkpoint: the trail must hold that very
checkpoint, else its tail was cut off.

It reports the first break: an edited, removed, reordered or inserted record, a bad
signature (the chain was recomputed after an edit), a truncated tail, a torn last line
(a crash mid-write, which the service cuts off when it starts again).

--public-key defaults to CERTS-DIR/SERVICE-audit.pub (SERVICE as the trail names it);
a certificate holding the key works too. --checkpoint defaults to FILE's name with
.checkpoint instead of .jsonl, for the first FILE that has one.

Exit status: 0 intact, 1 broken, 2 unreadable files or keys.`,
		Example: `  bankctl audit verify data/accounts.audit.jsonl
  bankctl audit verify data/accounts.audit.*.jsonl data/accounts.audit.jsonl
  bankctl audit verify --public-key accounts-audit.pub --checkpoint copy-of.checkpoint trail/*.jsonl`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, files []string) error {
			if noCheckpoint && checkpointPath != "" {
				return usageFailure(errors.New("--checkpoint and --no-checkpoint are alternatives: give at most one"))
			}
			service, err := trailService(files)
			if err != nil {
				return usageFailure(err)
			}
			if pubPath == "" {
				pubPath = filepath.Join(a.g.certsDir, service+"-audit.pub")
			}
			pubPEM, err := os.ReadFile(pubPath)
			if err != nil {
				return usageFailure(fmt.Errorf("audit public key: %w (give it with --public-key)", err))
			}
			pub, err := auditlog.ParsePublicKey(pubPEM)
			if err != nil {
				return usageFailure(fmt.Errorf("audit public key %s: %w", pubPath, err))
			}
			var checkpoint []byte
			if !noCheckpoint {
				if checkpointPath == "" {
					checkpointPath = findCheckpoint(files)
				}
				if checkpointPath == "" {
					return usageFailure(errors.New("no checkpoint file next to the audit files: give it with --checkpoint, or --no-checkpoint to check without it (a cut-off tail then goes unseen)"))
				}
				if checkpoint, err = os.ReadFile(checkpointPath); err != nil {
					return usageFailure(fmt.Errorf("checkpoint file: %w", err))
				}
			}
			rep, err := auditlog.Verify(files, pub, checkpoint)
			if err != nil {
				return usageFailure(err)
			}
			if err := a.printVerification(rep, checkpointPath); err != nil {
				return err
			}
			if rep.Break != nil {
				return &failure{diag: diagnosis{kind: KindAuditBroken, line: "audit trail broken: " + rep.Break.Error()}}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&pubPath, "public-key", "", "the service's audit public key (PEM PUBLIC KEY, or a certificate); default CERTS-DIR/SERVICE-audit.pub")
	f.StringVar(&checkpointPath, "checkpoint", "", "the trail's checkpoint file (default: next to the first FILE that has one)")
	f.BoolVar(&noCheckpoint, "no-checkpoint", false, "check without a checkpoint file (a cut-off tail goes unseen)")
	return cmd
}

// trailService returns the service the first record of the trail names.
func trailService(files []string) (string, error) {
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			return "", err
		}
		first, _, _ := bytes.Cut(data, []byte("\n"))
		if len(first) == 0 {
			continue
		}
		l, err := auditlog.ParseLine(first)
		if err != nil {
			return "", fmt.Errorf("%s: first line: %w", name, err)
		}
		if l.Service == "" || strings.ContainsAny(l.Service, `/\`) {
			return "", fmt.Errorf("%s: the first record names no usable service: give --public-key", name)
		}
		return l.Service, nil
	}
	return "", errors.New("the audit files are empty")
}

// findCheckpoint returns the default checkpoint file of the first file that has one.
func findCheckpoint(files []string) string {
	for _, name := range files {
		if cp := auditlog.CheckpointPath(name); cp != name {
			if _, err := os.Stat(cp); err == nil {
				return cp
			}
		}
	}
	return ""
}

func (a *app) printVerification(rep auditlog.Report, checkpointPath string) error {
	if a.json() {
		out := verifyJSON{OK: rep.Break == nil, Service: rep.Service, Files: rep.Files, Records: rep.Records,
			Checkpoints: rep.Checkpoints, LastSeq: rep.LastSeq, SignedSeq: rep.SignedSeq,
			CheckpointFile: checkpointPath, CheckpointFileSeq: rep.CheckpointFileSeq, Break: rep.Break}
		b, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			return localFailure(err)
		}
		if _, err := fmt.Fprintln(a.stdout, string(b)); err != nil {
			return localFailure(fmt.Errorf("write output: %w", err))
		}
		return nil
	}
	if rep.Break != nil {
		fmt.Fprintf(a.stdout, "BROKEN  %s\n", rep.Break)
		fmt.Fprintf(a.stdout, "        intact before it: %d records, %d checkpoints verified, up to seq %d\n", rep.Records, rep.Checkpoints, rep.LastSeq)
		return nil
	}
	fmt.Fprintf(a.stdout, "OK  %s: %d records in %d files, %d checkpoints verified; last seq %d, signed up to %d\n",
		rep.Service, rep.Records, len(rep.Files), rep.Checkpoints, rep.LastSeq, rep.SignedSeq)
	if checkpointPath != "" {
		fmt.Fprintf(a.stdout, "    checkpoint file %s names seq %d: found in the trail, nothing cut off before it\n", checkpointPath, rep.CheckpointFileSeq)
	}
	if unsigned := rep.LastSeq - rep.SignedSeq; unsigned > 0 {
		fmt.Fprintf(a.stdout, "    %d lines after the last checkpoint are protected by the chain only (the service signs them at its next checkpoint)\n", unsigned)
	}
	return nil
}
