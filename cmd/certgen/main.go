// Command certgen creates the development PKI in certs/dev (what `make certs` runs),
// and issues and revokes certificates in it.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
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
	force       bool
	ttl         time.Duration
	caTTL       time.Duration
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
		opts := append([]devpki.Option{devpki.WithKeyType(kt), devpki.WithP12Password(cfg.p12Password)}, extra...)
		return devpki.New(cfg.dir, opts...)
	}
	report := func(results []devpki.FileResult, err error) error {
		for _, r := range results {
			fmt.Fprintln(stdout, r)
		}
		return err
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
			"ca.crt, crl.pem, rogue-ca.crt and NAME.crt/.key/.p12 for " + strings.Join(devpki.Names(), ", ") + ".\n" +
			"Existing valid files are kept; CA private material lives in DIR/ca.",
		Args:          cobra.NoArgs,
		RunE:          initRun,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&cfg.dir, "dir", devpki.DefaultDir, "PKI directory")
	pf.StringVar(&cfg.keyType, "key-type", string(pki.ECDSAP256), "key type of new keys: "+keyTypeNames())
	pf.StringVar(&cfg.p12Password, "p12-password", devpki.DefaultP12Password, "password of the .p12 files")

	addInitFlags := func(cmd *cobra.Command) {
		cmd.Flags().BoolVar(&cfg.force, "force", false, "start over: new CAs, every certificate reissued, a fresh CRL")
		cmd.Flags().DurationVar(&cfg.ttl, "ttl", devpki.DefaultLeafTTL, "lifetime of leaves and the CRL")
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
			return report(p.Issue(args[0], cfg.spiffeID, cfg.ttl))
		},
	}
	issueCmd.Flags().StringVar(&cfg.spiffeID, "spiffe-id", "", "SPIFFE ID in trust domain "+devpki.TrustDomain+" (required for a new NAME)")
	issueCmd.Flags().DurationVar(&cfg.ttl, "ttl", devpki.DefaultLeafTTL, "lifetime of the certificate")

	revokeCmd := &cobra.Command{
		Use:   "revoke NAME",
		Short: "List NAME's current serial in crl.pem",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := open()
			if err != nil {
				return err
			}
			return report(p.Revoke(args[0]))
		},
	}

	root.AddCommand(initCmd, issueCmd, revokeCmd)
	root.SetArgs(args)
	root.SetOut(stdout)
	return root.ExecuteContext(ctx)
}

func keyTypeNames() string {
	var names []string
	for _, kt := range pki.KeyTypes() {
		names = append(names, string(kt))
	}
	return strings.Join(names, ", ")
}
