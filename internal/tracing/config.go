package tracing

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// The environment variables FromEnv reads, as the OpenTelemetry specification names them.
// The OTLP exporter also reads the other OTEL_EXPORTER_OTLP_* variables itself (headers,
// certificate, client certificate, timeout, compression), and the batch span processor
// its OTEL_BSP_* ones; OTEL_RESOURCE_ATTRIBUTES adds resource attributes.
const (
	EnvSDKDisabled      = "OTEL_SDK_DISABLED"
	EnvServiceName      = "OTEL_SERVICE_NAME"
	EnvTracesExporter   = "OTEL_TRACES_EXPORTER"
	EnvEndpoint         = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvTracesEndpoint   = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	EnvProtocol         = "OTEL_EXPORTER_OTLP_PROTOCOL"
	EnvTracesProtocol   = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	EnvTracesSampler    = "OTEL_TRACES_SAMPLER"
	EnvTracesSamplerArg = "OTEL_TRACES_SAMPLER_ARG"
)

// Config says whether and where a process exports its spans. The zero Config is the
// production default: trace context is carried (an incoming traceparent reaches the logs
// and the calls made on its behalf) but nothing is recorded or exported.
type Config struct {
	// Disabled turns tracing off altogether (OTEL_SDK_DISABLED=true): no stats handler,
	// no trace context carried across the process.
	Disabled bool
	// Endpoint is the OTLP/gRPC collector URL, http://HOST:PORT (plain) or
	// https://HOST:PORT (TLS, with the system roots or OTEL_EXPORTER_OTLP_CERTIFICATE);
	// empty: no exporter.
	Endpoint string
	// ServiceName overrides the service.name resource attribute (default: the name New
	// is given).
	ServiceName string
	// Sampler is an OTEL_TRACES_SAMPLER name (default parentbased_always_on) and
	// SamplerArg its OTEL_TRACES_SAMPLER_ARG (the ratio of the traceidratio samplers).
	Sampler, SamplerArg string
}

// Exporting reports whether c exports spans.
func (c Config) Exporting() bool { return !c.Disabled && c.Endpoint != "" }

// FromEnv reads the configuration from the standard variables through getenv (os.Getenv
// in production). Spans are exported over OTLP/gRPC when OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
// or OTEL_EXPORTER_OTLP_ENDPOINT is set (the first wins) and OTEL_TRACES_EXPORTER is
// "otlp" or unset; unlike the specification's default of localhost, nothing is exported
// without an endpoint. A value that cannot work (an unknown exporter or sampler, a
// protocol other than grpc, an endpoint that is not an http(s) URL) is an error naming
// its variable, so that a misconfiguration stops the start instead of silently not
// tracing.
func FromEnv(getenv func(string) string) (Config, error) {
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	var c Config
	var errs []error
	switch v := strings.ToLower(get(EnvSDKDisabled)); v {
	case "true":
		c.Disabled = true
	case "false", "":
	default:
		errs = append(errs, fmt.Errorf("%s=%q: want true or false", EnvSDKDisabled, v))
	}
	c.ServiceName = get(EnvServiceName)
	exporting := true
	switch v := strings.ToLower(get(EnvTracesExporter)); v {
	case "otlp", "":
	case "none":
		exporting = false
	default:
		errs = append(errs, fmt.Errorf("%s=%q: want otlp or none (only OTLP over gRPC is built in)", EnvTracesExporter, v))
	}
	for _, k := range []string{EnvTracesProtocol, EnvProtocol} {
		if v := get(k); v != "" {
			if v != "grpc" {
				errs = append(errs, fmt.Errorf("%s=%q: only grpc is supported (the collector's OTLP/gRPC port, usually 4317)", k, v))
			}
			break // the signal-specific variable wins
		}
	}
	for _, k := range []string{EnvTracesEndpoint, EnvEndpoint} {
		if v := get(k); v != "" {
			if err := checkEndpoint(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", k, v, err))
			}
			if exporting {
				c.Endpoint = v
			}
			break
		}
	}
	c.Sampler, c.SamplerArg = strings.ToLower(get(EnvTracesSampler)), get(EnvTracesSamplerArg)
	if _, err := c.sampler(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("tracing: %w", err)
	}
	return c, nil
}

// checkEndpoint accepts the URLs the gRPC exporter can dial: http or https, a host, a port
// or none (the exporter's default 4317), nothing else.
func checkEndpoint(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("want a URL http://HOST:PORT (plain) or https://HOST:PORT (TLS)")
	}
	if u.Hostname() == "" {
		return errors.New("no host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("bad port %q", p)
		}
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("want no user, query or fragment (headers go in OTEL_EXPORTER_OTLP_HEADERS)")
	}
	return nil
}

// sampler returns the sampler of c.Sampler and c.SamplerArg, as the specification defines
// them (an empty or missing ratio is 1.0).
func (c Config) sampler() (sdktrace.Sampler, error) {
	ratio := 1.0
	if c.SamplerArg != "" && strings.HasSuffix(c.Sampler, "traceidratio") {
		r, err := strconv.ParseFloat(c.SamplerArg, 64)
		if err != nil || r < 0 || r > 1 {
			return nil, fmt.Errorf("%s=%q: want a ratio from 0 to 1", EnvTracesSamplerArg, c.SamplerArg)
		}
		ratio = r
	}
	switch c.Sampler {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio), nil
	default:
		return nil, fmt.Errorf("%s=%q: want always_on, always_off, traceidratio or parentbased_ with one of those", EnvTracesSampler, c.Sampler)
	}
}
