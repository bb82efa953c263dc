package bench

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestTargetLine(t *testing.T) {
	tests := []struct {
		name   string
		target Target
		want   string
	}{
		{name: "ratio met", target: Target{Name: "r", Measured: 0.951, Goal: 0.90, Format: "%.2f"}, want: "target r 0.95 >=0.90 PASS"},
		{name: "ratio at the goal", target: Target{Name: "r", Measured: 0.90, Goal: 0.90, Format: "%.2f"}, want: "target r 0.90 >=0.90 PASS"},
		{name: "ratio missed", target: Target{Name: "r", Measured: 0.42, Goal: 0.90, Format: "%.2f"}, want: "target r 0.42 >=0.90 MISS"},
		{name: "cost met", target: Target{Name: "ns", Measured: 108.4, Goal: 200, AtMost: true, Format: "%.0f"}, want: "target ns 108 <=200 PASS"},
		{name: "cost missed", target: Target{Name: "ns", Measured: 892, Goal: 200, AtMost: true, Format: "%.0f"}, want: "target ns 892 <=200 MISS"},
		{name: "rate missed", target: Target{Name: "tps", Measured: 0, Goal: 5000, Format: "%.0f"}, want: "target tps 0 >=5000 MISS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.target.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSampleStatistics(t *testing.T) {
	lat := func(ms ...int) []time.Duration {
		out := make([]time.Duration, len(ms))
		for i, m := range ms {
			out[i] = time.Duration(m) * time.Millisecond
		}
		return out
	}
	a := sample{calls: 4, elapsed: 2 * time.Second, cpu: 8 * time.Millisecond, lat: lat(1, 2, 3, 4)}
	b := sample{calls: 6, elapsed: 2 * time.Second, cpu: 2 * time.Millisecond, lat: lat(5, 6, 7, 8, 9, 100)}
	m := merge([]sample{b, a})
	tests := []struct {
		name      string
		got, want float64
	}{
		{name: "rate", got: a.rate(), want: 2},
		{name: "merged rate", got: m.rate(), want: 2.5},
		{name: "cpu per call", got: float64(a.cpuPerCall()), want: float64(2 * time.Millisecond)},
		{name: "merged cpu per call", got: float64(m.cpuPerCall()), want: float64(time.Millisecond)},
		{name: "p50 nearest rank", got: float64(m.quantile(0.5)), want: float64(5 * time.Millisecond)},
		{name: "p99 is the slowest of ten", got: float64(m.quantile(0.99)), want: float64(100 * time.Millisecond)},
		{name: "p0 is the fastest", got: float64(m.quantile(0)), want: float64(time.Millisecond)},
		{name: "empty sample", got: float64(sample{}.quantile(0.5)) + sample{}.rate() + float64(sample{}.cpuPerCall()), want: 0},
		{name: "median odd", got: median([]float64{3, 1, 2}), want: 2},
		{name: "median even", got: median([]float64{4, 1, 3, 2}), want: 2.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if math.Abs(tt.got-tt.want) > 1e-9 {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
	c := &Comparison{BaseRounds: []sample{a, a, a}, SubjectRounds: []sample{b, a, {}}}
	if got := c.Ratios(); len(got) != 3 || got[0] != 1.5 || got[1] != 1 || got[2] != 0 {
		t.Errorf("Ratios() = %v, want [1.5 1 0]", got)
	}
	if got := c.Ratio(); got != 1 {
		t.Errorf("Ratio() = %v, want the median 1", got)
	}
}

func TestRunLoadCountsErrors(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name       string
		fail       func(w, i int) bool
		wantErr    bool
		wantErrors bool
	}{
		{name: "no failure", fail: func(int, int) bool { return false }},
		// The fourth call of the run fails, whichever worker makes it: on a loaded
		// machine a given worker may not start before the run's end.
		{name: "one call fails", fail: func() func(w, i int) bool {
			var n atomic.Int64
			return func(int, int) bool { return n.Add(1) == 4 }
		}(), wantErrors: true},
		{name: "every call fails", fail: func(int, int) bool { return true }, wantErr: true, wantErrors: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := runLoad(context.Background(), 4, 300*time.Millisecond, func(_ context.Context, w, i int) error {
				if tt.fail(w, i) {
					return boom
				}
				return nil
			})
			if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, boom)) {
				t.Fatalf("runLoad() error = %v, want error %v", err, tt.wantErr)
			}
			if (s.errors > 0) != tt.wantErrors || (tt.wantErrors && !errors.Is(s.example, boom)) {
				t.Errorf("errors = %d (%v), want some: %v", s.errors, s.example, tt.wantErrors)
			}
			if tt.name == "one call fails" && (s.errors != 1 || !strings.Contains(s.example.Error(), "worker ")) {
				t.Errorf("errors = %d, example %v; want the one failing call", s.errors, s.example)
			}
			if len(s.lat) != s.calls || (!tt.wantErr && s.calls == 0) {
				t.Errorf("%d calls, %d latencies", s.calls, len(s.lat))
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig()
	good.AccountsPolicy = "../../services/accounts/policy.yaml"
	good.PaymentsPolicy = "../../services/payments/policy.yaml"
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate() of the defaults = %v", err)
	}
	tests := []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{name: "no rounds", modify: func(c *Config) { c.Rounds = 0 }, want: "rounds 0"},
		{name: "no duration", modify: func(c *Config) { c.Duration = 0 }, want: "duration 0s"},
		{name: "negative warm-up", modify: func(c *Config) { c.Warmup = -time.Second }, want: "warmup -1s"},
		{name: "no callers", modify: func(c *Config) { c.Concurrency = 0 }, want: "concurrency 0"},
		{name: "no connections", modify: func(c *Config) { c.Conns = 0 }, want: "conns 0"},
		{name: "missing policy", modify: func(c *Config) { c.AccountsPolicy = "nope.yaml" }, want: "accounts policy: stat nope.yaml"},
		{name: "unknown section", modify: func(c *Config) { c.Sections = []string{"reads", "speed"} }, want: `section "speed"`},
		{name: "no flood", modify: func(c *Config) { c.FloodConns = 0 }, want: "flood conns 0"},
		{name: "no flood source", modify: func(c *Config) { c.FloodSources = 0 }, want: "flood sources 0"},
		{name: "flood sources beyond 127.0.0.255", modify: func(c *Config) { c.FloodSources = 247 }, want: "flood sources 247: want at most 246"},
		{name: "no flood duration", modify: func(c *Config) { c.FloodDuration = 0 }, want: "flood duration 0s"},
		{name: "negative flood reopen", modify: func(c *Config) { c.FloodReopen = -time.Millisecond }, want: "flood reopen -1ms"},
		{name: "no call during the flood", modify: func(c *Config) { c.FloodCalls = 0 }, want: "flood calls 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.modify(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestFloodTarget checks the flood's target: the slowest call within a second passes, a
// failed call (or none) misses whatever the others took.
func TestFloodTarget(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		out := make([]time.Duration, len(n))
		for i, m := range n {
			out[i] = time.Duration(m) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name    string
		flood   FloodResult
		wantP50 time.Duration
		want    string
	}{
		{name: "all quick", flood: FloodResult{Calls: ms(30, 10, 20)}, wantP50: 20 * time.Millisecond,
			want: "target flood_fresh_call_max_ms 30.0 <=1000.0 PASS"},
		{name: "one slow", flood: FloodResult{Calls: ms(30, 1200, 20, 10)}, wantP50: 30 * time.Millisecond,
			want: "target flood_fresh_call_max_ms 1200.0 <=1000.0 MISS"},
		{name: "at the bound", flood: FloodResult{Calls: ms(1000)}, wantP50: time.Second,
			want: "target flood_fresh_call_max_ms 1000.0 <=1000.0 PASS"},
		{name: "a failed call", flood: FloodResult{Calls: ms(5, 6), Errors: 1}, wantP50: 6 * time.Millisecond,
			want: "target flood_fresh_call_max_ms +Inf <=1000.0 MISS"},
		{name: "no call", flood: FloodResult{}, want: "target flood_fresh_call_max_ms +Inf <=1000.0 MISS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Results{Config: Config{Sections: []string{SectionFlood}}, Flood: &tt.flood}
			targets := r.Targets()
			if len(targets) != 1 || targets[0].String() != tt.want {
				t.Fatalf("Targets() = %v, want [%s]", targets, tt.want)
			}
			if got := tt.flood.CallQuantile(0.5); got != tt.wantP50 {
				t.Errorf("CallQuantile(0.5) = %v, want %v", got, tt.wantP50)
			}
		})
	}
	f := FloodResult{Refused: map[string]float64{"handshaking": 7, "per_source": 3, "total": 0}}
	if got := f.RefusedTotal(); got != 10 {
		t.Errorf("RefusedTotal() = %v, want 10", got)
	}
}

// TestParseTargetsAndChanges reads the target lines of a report and prints, for the
// targets both reports have, the change.
func TestParseTargetsAndChanges(t *testing.T) {
	report := "mtlsbank benchmarks\n" +
		"   payments_per_s 2693\n" + // an informational line, not a target
		"target payments_per_s 2000 >=2000 PASS\n" +
		"target full_stack_rps_ratio 0.36 >=0.90 MISS\n" +
		"target authz_decision_ns 106 <=200 PASS\n"
	prev, err := ParseTargets(strings.NewReader(report))
	if err != nil {
		t.Fatal(err)
	}
	if len(prev) != 3 || prev["payments_per_s"] != 2000 || prev["authz_decision_ns"] != 106 {
		t.Fatalf("ParseTargets = %v", prev)
	}
	if _, err := ParseTargets(strings.NewReader("target x fast >=1 PASS\n")); err == nil {
		t.Error("a target line without a number was accepted")
	}
	r := &Results{Config: Config{Previous: prev}}
	var out strings.Builder
	r.writeChanges(&out, []Target{
		{Name: "payments_per_s", Measured: 2500, Format: "%.0f"},
		{Name: "durable_transfers_per_s", Measured: 7000, Format: "%.0f"},
	})
	if got := out.String(); !strings.Contains(got, "payments_per_s 2000 -> 2500 (+25%)") || strings.Contains(got, "durable_transfers_per_s") {
		t.Errorf("changes:\n%s", got)
	}
}
