package analytics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/analytics"
)

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{in: "", want: time.Time{}},
		{in: "2026-11-27T08:30:00Z", want: time.Date(2026, 11, 27, 8, 30, 0, 0, time.UTC)},
		{in: "2026-11-27T09:30:00+01:00", want: time.Date(2026, 11, 27, 8, 30, 0, 0, time.UTC)},
		{in: "2026-11-27", want: time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)},
		{in: "2026-11-27 08:30:00", want: time.Date(2026, 11, 27, 8, 30, 0, 0, time.UTC)},
		{in: "24h", want: now.Add(-24 * time.Hour)},
		{in: "yesterday", wantErr: true},
		{in: "-24h", wantErr: true},
		{in: "2026-13-01", wantErr: true},
		{in: "'; DROP TABLE telemetry; --", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := analytics.ParseTime(tt.in, now)
			if tt.wantErr {
				require.ErrorIs(t, err, analytics.ErrBadFilter)
				require.ErrorContains(t, err, "RFC 3339")
				return
			}
			require.NoError(t, err)
			require.True(t, tt.want.Equal(got), "got %s", got)
		})
	}
}

func TestFilterParams(t *testing.T) {
	base := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		f       analytics.Filter
		want    map[string]string
		wantErr string
	}{
		{name: "defaults", f: analytics.Filter{}, want: map[string]string{
			"since": "1970-01-01 00:00:00.000", "until": "2200-01-01 00:00:00.000", "firmware": "", "region": "",
			"top": "5", "min_sample": "20", "threshold": "0.5"}},
		{name: "values pass through as text, never SQL", f: analytics.Filter{Since: base, Region: "x' OR 1=1 --", Firmware: "1.5.0", Top: 3}, want: map[string]string{
			"since": "2026-11-27 08:00:00.000", "until": "2200-01-01 00:00:00.000", "firmware": "1.5.0", "region": "x' OR 1=1 --",
			"top": "3", "min_sample": "20", "threshold": "0.5"}},
		{name: "empty range", f: analytics.Filter{Since: base, Until: base}, wantErr: "must be after"},
		{name: "before 1970", f: analytics.Filter{Since: time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)}, wantErr: "outside"},
		{name: "negative top", f: analytics.Filter{Top: -1}, wantErr: "top"},
		{name: "threshold above 1", f: analytics.Filter{Threshold: 1.5}, wantErr: "threshold"},
		{name: "control characters", f: analytics.Filter{Region: "eu\nwest"}, wantErr: "region"},
		{name: "too long", f: analytics.Filter{Firmware: strings.Repeat("9", 65)}, wantErr: "firmware"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.f.Params()
			if tt.wantErr != "" {
				require.ErrorIs(t, err, analytics.ErrBadFilter)
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}
