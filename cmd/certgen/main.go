// Command certgen creates the development PKI in certs/dev (what `make certs` runs),
// and issues and revokes certificates in it.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"mtlsbank/internal/devpki"
	"mtlsbank/internal/pki"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "certgen:", err)
		os.Exit(1)
	}
}

// config holds every flag.
type config struct {
	dir         string
	keyType     string
	p12Password string
	p12Full     bool
	force       bool
	ttl         time.Duration
	caTTL       time.Duration
	crlValidity time.Duration
	spiffeID    string
}

// run parses args and runs the selected command, printing one line per file to stdout.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	var cfg config
	open := func(extra ...devpki.Option) (*devpki.PKI, error) {
		kt, err := pki.ParseKeyType(cfg.keyType)
		if err != nil {
			return nil, err
		}
		opts := append([]devpki.Option{devpki.WithKeyType(kt), devpki.WithP12Password(cfg.p12Password),
			devpki.WithP12FullChain(cfg.p12Full), devpki.WithCRLValidity(cfg.crlValidity)}, extra...)
		return devpki.New(cfg.dir, opts...)
	}
	// changes prints only the files written or removed, and kept files with a note (such
	// as "already revoked").
	changes := func(results []devpki.FileResult, err error) error {
		for _, r := range results {
			if r.Action != devpki.Kept || r.Reason != "" {
				fmt.Fprintln(stdout, r)
			}
		}
		return err
	}
	// report is changes plus one line counting the files kept as they were, so that a
	// `make certs` with nothing to do prints one line, not one per file.
	report := func(results []devpki.FileResult, err error) error {
		if cerr := changes(results, err); cerr != nil {
			return cerr
		}
		kept := 0
		for _, r := range results {
			if r.Action == devpki.Kept && r.Reason == "" {
				kept++
			}
		}
		switch {
		case kept == len(results) && kept > 0:
			fmt.Fprintf(stdout, "kept  %s: all %d files are valid, nothing to do (--force starts over)\n", cfg.dir, kept)
		case kept > 0:
			fmt.Fprintf(stdout, "kept  %s: %d other files, still valid\n", cfg.dir, kept)
		}
		return nil
	}
	initRun := func(cmd *cobra.Command, _ []string) error {
		p, err := open(devpki.WithForce(cfg.force), devpki.WithLeafTTL(cfg.ttl), devpki.WithCATTL(cfg.caTTL))
		if err != nil {
			return err
		}
		return report(p.Init())
	}

	root := &cobra.Command{
		Use:   "certgen",
		Short: "Create the dev PKI (" + devpki.DefaultDir + "), issue and revoke certificates",
		Long: "certgen with no command (or `certgen init`) creates or refreshes the dev PKI:\n" +
			"  ca.crt             the trust anchors: the root CA only\n" +
			"  intermediates.crt  chain material: every intermediate in use\n" +
			"  crl.pem            one CRL per CA (the root's lists revoked intermediates,\n" +
			"                     each intermediate's its revoked leaves), with CRL numbers\n" +
			"  rogue-ca.crt       a CA nobody trusts\n" +
			"  NAME.crt/.key/.p12 leaf + its intermediate, for " + strings.Join(devpki.Names(), ", ") + "\n" +
			"                     (the .p12 key entry is named NAME: Java's alias, .NET's FriendlyName;\n" +
			"                     --p12-full-chain: the .p12 files hold the root CA too)\n" +
			"Existing valid files are kept; CA keys and certgen's state live in DIR/ca.\n\n" +
			rolloverHelp,
		Args:          cobra.NoArgs,
		RunE:          initRun,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&cfg.dir, "dir", devpki.DefaultDir, "PKI directory")
	pf.StringVar(&cfg.keyType, "key-type", string(pki.ECDSAP256), "key type of new keys: "+keyTypeNames())
	pf.StringVar(&cfg.p12Password, "p12-password", devpki.DefaultP12Password, "password of the .p12 files")
	pf.BoolVar(&cfg.p12Full, "p12-full-chain", false, "put the root CA in the .p12 files too (default: leaf and intermediates, as in NAME.crt)")
	pf.DurationVar(&cfg.crlValidity, "crl-validity", devpki.DefaultCRLValidity, "validity (thisUpdate to nextUpdate) of the CRLs signed")

	addInitFlags := func(cmd *cobra.Command) {
		cmd.Flags().BoolVar(&cfg.force, "force", false, "start over: new CAs, every certificate reissued, fresh CRLs")
		cmd.Flags().DurationVar(&cfg.ttl, "ttl", devpki.DefaultLeafTTL, "lifetime of leaves")
		cmd.Flags().DurationVar(&cfg.caTTL, "ca-ttl", devpki.DefaultCATTL, "lifetime of new CAs")
	}
	addInitFlags(root)

	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Create or refresh the dev PKI (the default command)",
		Args:  cobra.NoArgs,
		RunE:  initRun,
	}
	addInitFlags(initCmd)

	issueCmd := &cobra.Command{
		Use:   "issue NAME",
		Short: "Issue NAME.crt/.key/.p12: a built-in NAME gets its own profile again, a new NAME a client certificate",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := open()
			if err != nil {
				return err
			}
			return changes(p.Issue(args[0], cfg.spiffeID, cfg.ttl))
		},
	}
	issueCmd.Flags().StringVar(&cfg.spiffeID, "spiffe-id", "", "SPIFFE ID in trust domain "+devpki.TrustDomain+" (required for a new NAME)")
	issueCmd.Flags().DurationVar(&cfg.ttl, "ttl", devpki.DefaultLeafTTL, "lifetime of the certificate")

	revokeCmd := &cobra.Command{
		Use:   "revoke NAME",
		Short: "List leaf NAME's current serial in its intermediate's CRL in crl.pem",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := open()
			if err != nil {
				return err
			}
			return changes(p.Revoke(args[0]))
		},
	}

	revokeCACmd := &cobra.Command{
		Use:   "revoke-ca CA",
		Short: "List intermediate CA (e.g. intermediate, intermediate-2; see `certgen cas`) in the root's CRL",
		Long: "revoke-ca lists an intermediate in the root's CRL, so that every leaf it issued is refused by\n" +
			"verifiers that check the whole chain. The root cannot be revoked, nor the intermediate that\n" +
			"issues now (run `certgen rollover` first). The revoked intermediate stays in intermediates.crt\n" +
			"and keeps its CRL in crl.pem until it expires, so verifiers build its leaves' chains and see\n" +
			"why they fail; `certgen init` then reissues the built-in leaves it had issued.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := open()
			if err != nil {
				return err
			}
			return changes(p.RevokeCA(args[0]))
		},
	}

	rolloverCmd := &cobra.Command{
		Use:   "rollover",
		Short: "Make a new intermediate under the same root and issue from it; the old one stays valid",
		Long:  rolloverHelp,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := open(devpki.WithCATTL(cfg.caTTL))
			if err != nil {
				return err
			}
			return changes(p.Rollover())
		},
	}
	rolloverCmd.Flags().DurationVar(&cfg.caTTL, "ca-ttl", devpki.DefaultCATTL, "lifetime of the new intermediate")

	crlCmd := &cobra.Command{
		Use:   "crl",
		Short: "Re-sign every CRL in crl.pem if one has less than half its validity left (or --force)",
		Long: "crl re-signs the CRL of every CA (higher CRL numbers, nextUpdate --crl-validity from now) when\n" +
			"one has less than half of its validity left, or with --force, and rewrites crl.pem atomically.\n" +
			"It prints one line if it wrote crl.pem and nothing otherwise, so it can run from a loop or cron\n" +
			"(`make run` runs it every minute while the services run).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := open(devpki.WithForce(cfg.force))
			if err != nil {
				return err
			}
			results, err := p.RefreshCRLs()
			for _, r := range results {
				if r.Action == devpki.Wrote && filepath.Base(r.Path) == devpki.CRLFile {
					fmt.Fprintln(stdout, r)
				}
			}
			return err
		},
	}
	crlCmd.Flags().BoolVar(&cfg.force, "force", false, "re-sign even if no CRL is due")

	casCmd := &cobra.Command{
		Use:   "cas",
		Short: "List the dev CAs: name, serial, expiry, and whether each issues or is revoked",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := open()
			if err != nil {
				return err
			}
			cas, err := p.CAs()
			if err != nil {
				return err
			}
			for _, ca := range cas {
				var status []string
				for _, s := range []struct {
					on   bool
					word string
				}{{ca.Issuing, "issuing"}, {ca.Revoked, "revoked"}, {ca.Expired, "expired"}} {
					if s.on {
						status = append(status, s.word)
					}
				}
				fmt.Fprintf(stdout, "%-16s serial %s  not after %s  %s  %s\n", ca.Name, ca.Serial,
					ca.NotAfter.UTC().Format(time.RFC3339), ca.Subject, strings.Join(status, ","))
			}
			return nil
		},
	}

	root.AddCommand(initCmd, issueCmd, revokeCmd, revokeCACmd, rolloverCmd, crlCmd, casCmd)
	root.SetArgs(args)
	root.SetOut(stdout)
	return root.ExecuteContext(ctx)
}

// rolloverHelp is the intermediate rollover procedure (also in the README).
const rolloverHelp = `Intermediate rollover, without a failed handshake:
  1. certgen rollover        a new intermediate (ca/intermediate-N) under the same root issues from
                             now on; intermediates.crt lists old and new, crl.pem has a CRL for the
                             root and each. The services reload both files and accept the leaves
                             of either intermediate.
  2. certgen issue NAME      move each leaf to the new intermediate (certgen init moves the built-in
                             ones only when they are due for renewal or their issuer is revoked).
  3. certgen revoke-ca OLD   once no leaf of OLD is in use: the root's CRL lists OLD, and every
                             leaf it issued is refused (certgen cas lists the names).
  4. certgen init            reissues, from the new intermediate, every built-in leaf OLD issued.`

func keyTypeNames() string {
	var names []string
	for _, kt := range pki.KeyTypes() {
		names = append(names, string(kt))
	}
	return strings.Join(names, ", ")
}
