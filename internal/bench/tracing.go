package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"

	identityv1 "mtlsbank/gen/bank/identity/v1"
	"mtlsbank/internal/pki"
	"mtlsbank/internal/service"
	"mtlsbank/internal/tracesink"
	"mtlsbank/internal/tracing"
)

// TracingCost is what the tracing section measured: WhoAmI on accounts services that differ
// only in their tracing.
type TracingCost struct {
	// Off compares untraced (OTEL_SDK_DISABLED=true: no stats handler) with off, the
	// production default (tracing configured without an endpoint: the trace context is
	// carried, nothing recorded).
	Off *Comparison
	// Exporting compares off with exporting every call's span over OTLP/gRPC to a receiver
	// in this process.
	Exporting *Comparison
	// Calls is how many calls the exporting service answered (warm-up included), Spans
	// how many spans the receiver got from it.
	Calls, Spans int64
}

// tracingVariant is one accounts service of the tracing section.
type tracingVariant struct {
	name  string
	cfg   tracing.Config
	srv   *running
	conns []*grpc.ClientConn
}

// tracingCost runs an accounts service per tracing configuration and compares WhoAmI on
// them, untraced against off, off against exporting.
func (h *harness) tracingCost(ctx context.Context) (err error) {
	h.progress("starting accounts services untraced, with tracing off and exporting")
	m, err := newMaterial(pki.ECDSAP256)
	if err != nil {
		return err
	}
	sink, err := tracesink.Start(tracesink.WithMaxSpans(0)) // count, keep nothing
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, sink.Stop()) }()
	alice, err := m.client(aliceID)
	if err != nil {
		return err
	}
	variants := []*tracingVariant{
		{name: "untraced", cfg: tracing.Config{Disabled: true}},
		{name: "off", cfg: tracing.Config{}},
		{name: "exporting", cfg: tracing.Config{Endpoint: sink.Endpoint()}},
	}
	defer func() {
		for _, v := range variants {
			closeAll(v.conns)
			if v.srv != nil {
				err = errors.Join(err, v.srv.stop())
			}
		}
	}()
	for _, v := range variants {
		dir := filepath.Join(h.cfg.Dir, "tracing-"+v.name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		if v.srv, err = startAccounts(ctx, m, dir, h.cfg.AccountsPolicy, h.logger, false, nil, service.WithTracing(v.cfg)); err != nil {
			return fmt.Errorf("accounts %s: %w", v.name, err)
		}
		if v.conns, err = dial(m, alice, v.srv.addr, accountsID, h.cfg.Conns); err != nil {
			return err
		}
	}
	var exported atomic.Int64
	whoami := func(v *tracingVariant, count *atomic.Int64) func(context.Context, time.Duration) (sample, error) {
		call := func(ctx context.Context, w, _ int) error {
			_, err := identityv1.NewIdentityServiceClient(v.conns[w%len(v.conns)]).WhoAmI(ctx, &identityv1.WhoAmIRequest{})
			if err == nil && count != nil {
				count.Add(1)
			}
			return err
		}
		return func(ctx context.Context, d time.Duration) (sample, error) {
			return runLoad(ctx, h.cfg.Concurrency, d, call)
		}
	}
	untraced, off, exporting := variants[0], variants[1], variants[2]
	res := &TracingCost{
		Off:       &Comparison{Name: "WhoAmI tracing off", Base: untraced.name, Subject: off.name},
		Exporting: &Comparison{Name: "WhoAmI exporting", Base: off.name, Subject: exporting.name},
	}
	h.res.Tracing = res
	if err := h.alternate(ctx, res.Off, h.cfg.Duration, whoami(untraced, nil), whoami(off, nil)); err != nil {
		return fmt.Errorf("%s: %w", res.Off.Name, err)
	}
	if err := h.alternate(ctx, res.Exporting, h.cfg.Duration, whoami(off, nil), whoami(exporting, &exported)); err != nil {
		return fmt.Errorf("%s: %w", res.Exporting.Name, err)
	}
	// Stopping the service flushes its queue: then the receiver has all it will get.
	closeAll(exporting.conns)
	exporting.conns = nil
	err = exporting.srv.stop()
	exporting.srv = nil
	if err != nil {
		return err
	}
	res.Calls, res.Spans = exported.Load(), sink.Count()
	return nil
}

func (r *Results) writeTracing(bw io.Writer) {
	t := r.Tracing
	fmt.Fprintf(bw, "6. Tracing: WhoAmI on accounts services that differ only in their OpenTelemetry tracing: untraced\n"+
		"   (OTEL_SDK_DISABLED=true: no stats handler), off (the default, no endpoint: W3C trace context carried,\n"+
		"   nothing recorded), exporting (otelgrpc: every call a span, batched over OTLP/gRPC to a receiver in this process)\n")
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "comparison\tserver\tcalls/s\tp50\tp99\tCPU/call\terrors\tratio\tper round\t")
	var all []sample
	for _, cmp := range []*Comparison{t.Off, t.Exporting} {
		b, s := merge(cmp.BaseRounds), merge(cmp.SubjectRounds)
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%s\t%s\t%d\t\t\t\n", cmp.Name, cmp.Base, b.rate(), ms(b.quantile(0.5)), ms(b.quantile(0.99)), us(b.cpuPerCall()), b.errors)
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%s\t%s\t%d\t%.2f\t%s\t\n", cmp.Name, cmp.Subject, s.rate(), ms(s.quantile(0.5)), ms(s.quantile(0.99)), us(s.cpuPerCall()), s.errors, cmp.Ratio(), ratios(cmp.Ratios()))
		all = append(all, b, s)
	}
	tw.Flush()
	writeErrors(bw, all...)
	fmt.Fprintf(bw, "   spans received from the exporting service: %d for %d calls", t.Spans, t.Calls)
	if t.Calls > t.Spans {
		fmt.Fprintf(bw, " (%d dropped by its full queue rather than slow a call)", t.Calls-t.Spans)
	}
	// The CPU per call (both ends, this process only) moves less than the rates when other
	// work shares the machine.
	extra := func(c *Comparison) float64 {
		return float64(merge(c.SubjectRounds).cpuPerCall()-merge(c.BaseRounds).cpuPerCall()) / float64(time.Microsecond)
	}
	fmt.Fprintf(bw, "\n   tracing_off_rps_ratio %.2f\n   tracing_off_extra_cpu_us_per_call %.1f\n", t.Off.Ratio(), extra(t.Off))
	fmt.Fprintf(bw, "   tracing_exporting_rps_ratio %.2f\n   tracing_exporting_extra_cpu_us_per_call %.1f\n\n", t.Exporting.Ratio(), extra(t.Exporting))
}
