package proto_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/proto"
)

func TestParseTopic(t *testing.T) {
	long := strings.Repeat("d", proto.MaxIDLen)
	tests := []struct {
		name    string
		topic   string
		want    proto.Topic
		wantErr bool
	}{
		{name: "telemetry", topic: "fleet/eu-west/dev-1/telemetry", want: proto.Topic{Region: "eu-west", Device: "dev-1", Kind: proto.KindTelemetry}},
		{name: "status", topic: "fleet/us_east.2/A9/status", want: proto.Topic{Region: "us_east.2", Device: "A9", Kind: proto.KindStatus}},
		{name: "command", topic: "fleet/eu/dev-1/cmd", want: proto.Topic{Region: "eu", Device: "dev-1", Kind: proto.KindCommand}},
		{name: "longest ids", topic: "fleet/" + long + "/" + long + "/status", want: proto.Topic{Region: long, Device: long, Kind: proto.KindStatus}},

		{name: "empty", topic: "", wantErr: true},
		{name: "wrong root", topic: "fleets/eu/dev-1/telemetry", wantErr: true},
		{name: "recovery topic", topic: "sentinel/recovery/eu/dev-1", wantErr: true},
		{name: "root case", topic: "Fleet/eu/dev-1/telemetry", wantErr: true},
		{name: "leading slash", topic: "/fleet/eu/dev-1/telemetry", wantErr: true},
		{name: "trailing slash", topic: "fleet/eu/dev-1/telemetry/", wantErr: true},
		{name: "three levels", topic: "fleet/eu/dev-1", wantErr: true},
		{name: "five levels", topic: "fleet/eu/dev-1/telemetry/x", wantErr: true},
		{name: "one level", topic: "fleet", wantErr: true},
		{name: "unknown kind", topic: "fleet/eu/dev-1/metrics", wantErr: true},
		{name: "kind case", topic: "fleet/eu/dev-1/Telemetry", wantErr: true},
		{name: "empty kind", topic: "fleet/eu/dev-1/", wantErr: true},
		{name: "plus region", topic: "fleet/+/dev-1/telemetry", wantErr: true},
		{name: "plus device", topic: "fleet/eu/+/status", wantErr: true},
		{name: "plus kind", topic: "fleet/eu/dev-1/+", wantErr: true},
		{name: "hash kind", topic: "fleet/eu/dev-1/#", wantErr: true},
		{name: "hash device", topic: "fleet/eu/#/cmd", wantErr: true},
		{name: "filter", topic: proto.FilterTelemetry, wantErr: true},
		{name: "wildcard inside id", topic: "fleet/eu/dev+1/cmd", wantErr: true},
		{name: "empty region", topic: "fleet//dev-1/telemetry", wantErr: true},
		{name: "empty device", topic: "fleet/eu//telemetry", wantErr: true},
		{name: "all empty", topic: "fleet///", wantErr: true},
		{name: "long region", topic: "fleet/" + long + "r/dev-1/telemetry", wantErr: true},
		{name: "long device", topic: "fleet/eu/" + long + "d/telemetry", wantErr: true},
		{name: "non-ascii device", topic: "fleet/eu/dév-1/telemetry", wantErr: true},
		{name: "non-ascii region", topic: "fleet/européen/dev-1/telemetry", wantErr: true},
		{name: "space", topic: "fleet/eu/dev 1/telemetry", wantErr: true},
		{name: "nul", topic: "fleet/eu/dev\x001/telemetry", wantErr: true},
		{name: "shared prefix", topic: proto.Shared(proto.IngestGroup, "fleet/eu/dev-1/telemetry"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := proto.ParseTopic(tt.topic)
			if tt.wantErr {
				require.ErrorIs(t, err, proto.ErrBadTopic)
				require.Equal(t, "bad_topic", proto.Reason(err))
				require.Equal(t, proto.Topic{}, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.topic, got.String())
		})
	}
}

func TestTopicBuilders(t *testing.T) {
	tests := []struct {
		name   string
		build  func(region, device string) string
		kind   proto.Kind
		suffix string
	}{
		{name: "telemetry", build: proto.TelemetryTopic, kind: proto.KindTelemetry, suffix: "/telemetry"},
		{name: "status", build: proto.StatusTopic, kind: proto.KindStatus, suffix: "/status"},
		{name: "command", build: proto.CommandTopic, kind: proto.KindCommand, suffix: "/cmd"},
	}
	ids := []struct{ region, device string }{
		{"eu-west", "dev-1"},
		{"r", "d"},
		{"US.East_2", "0042-ab.C_d"},
		{strings.Repeat("r", proto.MaxIDLen), strings.Repeat("d", proto.MaxIDLen)},
	}
	for _, tt := range tests {
		for _, id := range ids {
			t.Run(tt.name+"/"+id.region[:1]+id.device[:1], func(t *testing.T) {
				name := tt.build(id.region, id.device)
				require.Equal(t, "fleet/"+id.region+"/"+id.device+tt.suffix, name)
				got, err := proto.ParseTopic(name)
				require.NoError(t, err)
				require.Equal(t, proto.Topic{Region: id.region, Device: id.device, Kind: tt.kind}, got)
				require.Equal(t, name, got.String())
			})
		}
	}
}

func TestRecoveryTopic(t *testing.T) {
	name := proto.RecoveryTopic("eu-west", "dev-1")
	require.Equal(t, "sentinel/recovery/eu-west/dev-1", name)
	require.True(t, strings.HasPrefix(name, proto.RecoveryRoot+"/"))
	// Audit topics are not device topics.
	_, err := proto.ParseTopic(name)
	require.ErrorIs(t, err, proto.ErrBadTopic)
}

func TestShared(t *testing.T) {
	tests := []struct {
		name   string
		group  string
		filter string
		want   string
	}{
		{name: "ingest telemetry", group: proto.IngestGroup, filter: proto.FilterTelemetry, want: "$share/ingest/fleet/+/+/telemetry"},
		{name: "ingest status", group: proto.IngestGroup, filter: proto.FilterStatus, want: "$share/ingest/fleet/+/+/status"},
		{name: "recovery", group: "audit", filter: proto.FilterRecovery, want: "$share/audit/sentinel/recovery/#"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, proto.Shared(tt.group, tt.filter))
		})
	}
}

func TestValidateID(t *testing.T) {
	tests := []struct {
		name    string
		id      string
		wantErr bool
	}{
		{name: "simple", id: "dev-1"},
		{name: "one char", id: "a"},
		{name: "all allowed classes", id: "AZaz09._-"},
		{name: "max length", id: strings.Repeat("x", proto.MaxIDLen)},
		{name: "dots only", id: ".."},

		{name: "empty", id: "", wantErr: true},
		{name: "too long", id: strings.Repeat("x", proto.MaxIDLen+1), wantErr: true},
		{name: "slash", id: "a/b", wantErr: true},
		{name: "plus", id: "+", wantErr: true},
		{name: "hash", id: "#", wantErr: true},
		{name: "dollar", id: "$share", wantErr: true},
		{name: "space", id: "a b", wantErr: true},
		{name: "tab", id: "a\tb", wantErr: true},
		{name: "nul", id: "a\x00", wantErr: true},
		{name: "non-ascii letter", id: "café", wantErr: true},
		{name: "non-ascii long", id: strings.Repeat("é", proto.MaxIDLen/2), wantErr: true},
		{name: "invalid utf-8", id: "a\xffb", wantErr: true},
		{name: "colon", id: "a:b", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := proto.ValidateID(tt.id)
			if !tt.wantErr {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, proto.ErrBadTopic)
			require.Equal(t, "bad_topic", proto.Reason(err))
		})
	}
}
