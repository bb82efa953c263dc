package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Label values of bank_connections_refused_total{reason}.
const (
	// RefusedTotal: the server holds --max-connections connections already.
	RefusedTotal = "total"
	// RefusedPerSource: the client's address holds --max-connections-per-source already.
	RefusedPerSource = "per_source"
	// RefusedHandshaking: the connections still handshaking (no verified client
	// certificate yet) fill --max-handshaking: the new connection was refused, or the
	// oldest handshaking connection of the source holding the most was closed to make
	// room for it.
	RefusedHandshaking = "handshaking"
	// RefusedHandshakingPerSource: the client's address holds
	// --max-handshaking-per-source connections that are still handshaking.
	RefusedHandshakingPerSource = "handshaking_per_source"
)

// Label values of bank_connections_closed_total{reason}, besides the
// tlsconfig.FailureReason of a chain that no longer checks.
const (
	// ClosedDrained: a connection asked to go away (GOAWAY) ahead of a certificate's
	// NotAfter was closed at the NotAfter.
	ClosedDrained = "drained"
)

// connMetrics are the metrics of connections, before and after their handshake.
type connMetrics struct {
	refused *prometheus.CounterVec
	closed  *prometheus.CounterVec
	drains  prometheus.Counter
	open    prometheus.Gauge
	hs      prometheus.Gauge
}

func newConnMetrics() *connMetrics {
	c := &connMetrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bank_connections_refused_total",
			Help: "TCP connections refused before their TLS handshake completed, by reason (total, per_source, handshaking, handshaking_per_source cap reached).",
		}, []string{"reason"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bank_connections_closed_total",
			Help: "Open connections closed by the server because the peer's certificate chain no longer checks (revoked, expired, unknown_ca, ...).",
		}, []string{"reason"}),
		drains: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bank_connections_drained_total",
			Help: "Connections told to go away (HTTP/2 GOAWAY) ahead of their peer certificate's NotAfter, so that the client reconnects with a rotated one.",
		}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bank_connections_open",
			Help: "TCP connections accepted and not yet closed, handshaking ones included.",
		}),
		hs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bank_connections_handshaking",
			Help: "TCP connections accepted whose mutual-TLS handshake has not completed yet (strangers, as far as the server knows).",
		}),
	}
	c.refused.WithLabelValues(RefusedTotal)
	c.refused.WithLabelValues(RefusedPerSource)
	c.refused.WithLabelValues(RefusedHandshaking)
	c.refused.WithLabelValues(RefusedHandshakingPerSource)
	return c
}

func (c *connMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{c.refused, c.closed, c.drains, c.open, c.hs}
}

// ObserveConnectionRefused counts a connection refused before its handshake completed
// (RefusedTotal, RefusedPerSource, RefusedHandshaking, RefusedHandshakingPerSource).
func (m *Metrics) ObserveConnectionRefused(reason string) {
	m.conns.refused.WithLabelValues(reason).Inc()
}

// ObserveConnectionClosed counts an open connection the server closed because its peer's
// chain no longer checks; reason is a tlsconfig.FailureReason or ClosedDrained.
func (m *Metrics) ObserveConnectionClosed(reason string) {
	m.conns.closed.WithLabelValues(reason).Inc()
}

// ObserveConnectionDrain counts a GOAWAY sent ahead of a peer certificate's NotAfter.
func (m *Metrics) ObserveConnectionDrain() { m.conns.drains.Inc() }

// ObserveConnectionsOpen moves the open connections gauge by delta (+1 on accept, -1 on close).
func (m *Metrics) ObserveConnectionsOpen(delta int) { m.conns.open.Add(float64(delta)) }

// ObserveConnectionsHandshaking moves the handshaking connections gauge by delta (+1 on
// accept, -1 when the handshake succeeds or the connection closes).
func (m *Metrics) ObserveConnectionsHandshaking(delta int) { m.conns.hs.Add(float64(delta)) }
