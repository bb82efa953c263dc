package tracing_test

import (
	"strings"
	"testing"

	"mtlsbank/internal/tracing"
)

func TestFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    tracing.Config
		wantErr []string // substrings of the error; nil: no error
	}{
		{name: "nothing set: carry context, export nothing", env: nil, want: tracing.Config{}},
		{
			name: "endpoint",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_SERVICE_NAME": "acc-eu-1"},
			want: tracing.Config{Endpoint: "http://127.0.0.1:4317", ServiceName: "acc-eu-1"},
		},
		{
			name: "the traces endpoint wins",
			env: map[string]string{
				"OTEL_EXPORTER_OTLP_ENDPOINT":        "http://127.0.0.1:4317",
				"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://collector.example:4317",
			},
			want: tracing.Config{Endpoint: "https://collector.example:4317"},
		},
		{
			name: "exporter none keeps the endpoint unused",
			env:  map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_TRACES_EXPORTER": "none"},
			want: tracing.Config{},
		},
		{
			name: "disabled",
			env:  map[string]string{"OTEL_SDK_DISABLED": "TRUE", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"},
			want: tracing.Config{Disabled: true, Endpoint: "http://127.0.0.1:4317"},
		},
		{
			name: "sampler with ratio",
			env:  map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			want: tracing.Config{Sampler: "parentbased_traceidratio", SamplerArg: "0.25"},
		},
		{name: "disabled not a boolean", env: map[string]string{"OTEL_SDK_DISABLED": "yes"}, wantErr: []string{"OTEL_SDK_DISABLED", "true or false"}},
		{name: "unknown exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, wantErr: []string{"OTEL_TRACES_EXPORTER", "zipkin"}},
		{name: "http protocol", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, wantErr: []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "only grpc"}},
		{
			name:    "the traces protocol wins",
			env:     map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
			wantErr: []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"},
		},
		{name: "endpoint without scheme", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4317"}, wantErr: []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://HOST:PORT"}},
		{name: "endpoint without host", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://:4317"}, wantErr: []string{"no host"}},
		{name: "endpoint with a bad port", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:99999"}, wantErr: []string{"bad port"}},
		{name: "endpoint with credentials", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://u:p@collector:4317"}, wantErr: []string{"OTEL_EXPORTER_OTLP_HEADERS"}},
		{name: "unknown sampler", env: map[string]string{"OTEL_TRACES_SAMPLER": "jaeger_remote"}, wantErr: []string{"OTEL_TRACES_SAMPLER", "jaeger_remote"}},
		{name: "ratio out of range", env: map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.5"}, wantErr: []string{"OTEL_TRACES_SAMPLER_ARG"}},
		{
			name:    "every error at once",
			env:     map[string]string{"OTEL_SDK_DISABLED": "1", "OTEL_TRACES_SAMPLER": "sometimes"},
			wantErr: []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_SAMPLER"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tracing.FromEnv(func(k string) string { return tt.env[k] })
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("FromEnv = %+v, want an error", got)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not mention %q", err, s)
					}
				}
				if got != (tracing.Config{}) {
					t.Errorf("FromEnv returned %+v with its error, want the zero Config", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("FromEnv: %v", err)
			}
			if got != tt.want {
				t.Errorf("FromEnv = %+v, want %+v", got, tt.want)
			}
			if got.Exporting() != (tt.want.Endpoint != "" && !tt.want.Disabled) {
				t.Errorf("Exporting() = %v for %+v", got.Exporting(), got)
			}
		})
	}
}
