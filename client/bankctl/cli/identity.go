package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	identityv1 "mtlsbank/gen/bank/identity/v1"
)

func (a *app) whoamiCommand() *cobra.Command {
	var service string
	cmd := &cobra.Command{
		Use:   "whoami",
		Short: "Show the identity and roles a service sees in your certificate",
		Long: `whoami asks a service (IdentityService/WhoAmI) how it identified you: the SPIFFE ID
of your verified certificate and the roles its policy grants it. Any valid bank
certificate may call it, so it is the first thing to try when a call is refused.`,
		Example: `  bankctl --as alice whoami
  bankctl --as teller whoami --service payments
  bankctl --cert my.crt --key my.key --ca ca.crt --addr bank.example:50051 whoami`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := validService(service); err != nil {
				return err
			}
			resp, err := unary(a, cmd, service, identityv1.IdentityService_WhoAmI_FullMethodName,
				func(ctx context.Context, cc grpc.ClientConnInterface) (*identityv1.WhoAmIResponse, error) {
					return identityv1.NewIdentityServiceClient(cc).WhoAmI(ctx, &identityv1.WhoAmIRequest{})
				})
			if err != nil {
				return err
			}
			addr, _, _ := a.endpoint(service)
			return a.emit(resp, func(w io.Writer) { whoamiTable(w, service, addr, resp) })
		},
	}
	cmd.Flags().StringVar(&service, "service", serviceAccounts, "service to ask: accounts or payments")
	return cmd
}

func (a *app) healthCommand() *cobra.Command {
	var service, name string
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Ask a service whether it is serving (grpc.health.v1)",
		Long: `health calls grpc.health.v1.Health/Check over mutual TLS. It exits 0 when the service
answers SERVING and 1 when it answers anything else.`,
		Example: `  bankctl --as auditor health
  bankctl --as auditor health --service payments
  bankctl --as auditor health --name bank.accounts.v1.AccountsService`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := validService(service); err != nil {
				return err
			}
			resp, err := unary(a, cmd, service, healthpb.Health_Check_FullMethodName,
				func(ctx context.Context, cc grpc.ClientConnInterface) (*healthpb.HealthCheckResponse, error) {
					return healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: name})
				})
			if err != nil {
				return err
			}
			addr, _, _ := a.endpoint(service)
			label := name
			if label == "" {
				label = "(server)"
			}
			if err := a.emit(resp, func(w io.Writer) {
				row(w, "SERVICE", "ADDRESS", "HEALTH CHECK", "STATUS")
				row(w, service, addr, label, resp.GetStatus().String())
			}); err != nil {
				return err
			}
			if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				return &failure{diag: diagnosis{kind: KindRequest, line: fmt.Sprintf("the %s service at %s answers %s, not SERVING; it may be starting or shutting down", service, addr, resp.GetStatus()),
					message: "serving status " + resp.GetStatus().String()}}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&service, "service", serviceAccounts, "service to ask: accounts or payments")
	cmd.Flags().StringVar(&name, "name", "", "gRPC service name to check (default: the whole server)")
	return cmd
}
