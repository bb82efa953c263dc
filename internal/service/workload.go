package service

import (
	"context"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"mtlsbank/internal/svidsource"
	"mtlsbank/internal/tlsconfig"
)

// openWorkloadAPI takes the identity from the SPIFFE Workload API (--spiffe-endpoint):
// it waits, at most --spiffe-start-timeout, for the first X.509-SVID, registers the SVID
// metrics, and has the background follow the rotations. A new trust bundle re-checks the
// open connections, as a reload of the CA file does. The watch ends when the runtime closes.
func (r *Runtime) openWorkloadAPI(ctx context.Context, td spiffeid.TrustDomain, srcOpts []tlsconfig.SourceOption) error {
	// The metrics first: the Workload API may report errors as soon as the watch runs.
	var err error
	if r.svid, err = r.metrics.WatchSVID(r.leaf); err != nil {
		return err
	}
	w, err := svidsource.Open(ctx, r.cfg.SPIFFEEndpoint, td,
		svidsource.WithLogger(r.logger),
		svidsource.WithStartTimeout(r.cfg.SPIFFEStartTimeout),
		svidsource.WithSourceOptions(srcOpts...),
		svidsource.WithHooks(svidsource.Hooks{OnUpdate: r.svidUpdated, OnError: r.workloadAPIError}),
	)
	if err != nil {
		return err
	}
	r.workload, r.src = w, w.Source()
	r.closers = append(r.closers, w.Close) // first registered: closed last
	r.background = append(r.background, w.Run)
	return nil
}

// svidUpdated counts a rotation and, after a bundle change, re-checks open connections
// (a CA that left the bundle must not keep its peers connected).
func (r *Runtime) svidUpdated(u tlsconfig.Update) {
	if u.Rotated {
		r.svid.ObserveRotation()
	}
	if u.BundleChanged {
		r.srv.RecheckConnections()
	}
}

func (r *Runtime) workloadAPIError(error) { r.svid.ObserveWorkloadAPIError() }
