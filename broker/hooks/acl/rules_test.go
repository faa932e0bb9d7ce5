package acl

import (
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/broker/hooks/auth"
)

func TestDefaultRules(t *testing.T) {
	dev := auth.Identity{Username: "dev-1", ClientID: "dev-1", Role: auth.RoleDevice}
	gw := auth.Identity{Username: "gw", ClientID: "sim-1-0000", Role: auth.RoleGateway}
	svc := auth.Identity{Username: "sentinel-ingestor", ClientID: "sentinel-ingestor-0", Role: auth.RoleService}
	ops := auth.Identity{Username: "alice", ClientID: "alice-laptop", Role: auth.RoleOps}
	anon := auth.Identity{ClientID: "x", Role: auth.RoleAnonymous}
	tests := []struct {
		name   string
		id     auth.Identity
		access Access
		topic  string
		want   bool
	}{
		{"device publishes own telemetry", dev, Write, "fleet/eu-west/dev-1/telemetry", true},
		{"device publishes own status", dev, Write, "fleet/eu-west/dev-1/status", true},
		{"device publishes another's telemetry", dev, Write, "fleet/eu-west/dev-2/telemetry", false},
		{"device publishes own cmd", dev, Write, "fleet/eu-west/dev-1/cmd", false},
		{"device publishes audit", dev, Write, "sentinel/recovery/eu-west/dev-1", false},
		{"device publishes with extra level", dev, Write, "fleet/eu-west/dev-1/telemetry/x", false},
		{"device publishes prefix of own id", dev, Write, "fleet/eu-west/dev-10/telemetry", false},
		{"device subscribes own cmd", dev, Read, "fleet/eu-west/dev-1/cmd", true},
		{"device subscribes own cmd any region", dev, Read, "fleet/+/dev-1/cmd", true},
		{"device subscribes own cmd shared", dev, Read, "$share/g/fleet/+/dev-1/cmd", true},
		{"device subscribes another's cmd", dev, Read, "fleet/eu-west/dev-2/cmd", false},
		{"device subscribes every cmd", dev, Read, "fleet/+/+/cmd", false},
		{"device subscribes own subtree", dev, Read, "fleet/+/dev-1/#", false},
		{"device subscribes #", dev, Read, "#", false},
		{"device subscribes +/#", dev, Read, "+/#", false},
		{"device subscribes $SYS/#", dev, Read, "$SYS/#", false},
		{"device subscribes $SYS leaf", dev, Read, "$SYS/broker/uptime", false},
		{"device subscribes own telemetry", dev, Read, "fleet/eu-west/dev-1/telemetry", false},
		{"gateway publishes any telemetry", gw, Write, "fleet/us-east/dev-9/telemetry", true},
		{"gateway publishes any status", gw, Write, "fleet/us-east/dev-9/status", true},
		{"gateway subscribes every cmd", gw, Read, "fleet/+/+/cmd", true},
		{"gateway publishes cmd", gw, Write, "fleet/us-east/dev-9/cmd", false},
		{"gateway subscribes telemetry", gw, Read, "fleet/+/+/telemetry", false},
		{"service shared subscription", svc, Read, "$share/ingest/fleet/+/+/+", true},
		{"service reads fleet/#", svc, Read, "fleet/#", true},
		{"service reads status", svc, Read, "fleet/+/+/status", true},
		{"service reads fleet parent", svc, Read, "fleet", true},
		{"service reads #", svc, Read, "#", false},
		{"service reads sentinel", svc, Read, "sentinel/#", false},
		{"service reads advisories", svc, Read, "sentinel/rollout/+/halt", true},
		{"service writes cmd", svc, Write, "fleet/eu-west/dev-1/cmd", true},
		{"service writes audit", svc, Write, "sentinel/recovery/eu-west/dev-1", true},
		{"service writes telemetry", svc, Write, "fleet/eu-west/dev-1/telemetry", false},
		{"ops reads recovery", ops, Read, "sentinel/recovery/#", true},
		{"ops reads sentinel", ops, Read, "sentinel/#", true},
		{"ops reads $SYS", ops, Read, "$SYS/#", true},
		{"ops reads fleet", ops, Read, "fleet/#", false},
		{"ops publishes recovery", ops, Write, "sentinel/recovery/eu-west/dev-1", false},
		{"anonymous writes anything", anon, Write, "fleet/eu-west/dev-1/telemetry", true},
		{"anonymous reads #", anon, Read, "#", true},
		{"anonymous reads $SYS", anon, Read, "$SYS/broker/uptime", true},
		{"unknown role", auth.Identity{Role: "robot", ClientID: "r"}, Read, "fleet/#", false},
	}
	rules, err := compile(DefaultRules())
	require.NoError(t, err)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := check(rules, tt.id, tt.access, tt.topic)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestCovers(t *testing.T) {
	id := auth.Identity{ClientID: "c1", Username: "u1"}
	tests := []struct {
		rule, filter string
		want         bool
	}{
		{"#", "a/b", true},
		{"#", "$SYS/x", false},
		{"+/b", "$x/b", false},
		{"$SYS/#", "$SYS/x", true},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"a/#", "a/#", true},
		{"a/#", "b", false},
		{"a/+", "a/b", true},
		{"a/+", "a/+", true},
		{"a/+", "a/#", false},
		{"a/+", "a/b/c", false},
		{"a/+", "a", false},
		{"a/b", "a/+", false},
		{"a/b", "a/b", true},
		{"a/b", "a/b/", false},
		{"a/b/", "a/b/", true},
		{"a/${clientid}", "a/c1", true},
		{"a/${clientid}", "a/u1", false},
		{"a/${username}", "a/u1", true},
		{"a/${username}/x", "a/+/x", false},
		{"", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.rule+" covers "+tt.filter, func(t *testing.T) {
			rs, err := compile([]Rule{{Access: Read, Filter: tt.rule, Allow: true}})
			if tt.rule == "" {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, covers(rs[0].levels, id, tt.filter))
		})
	}
}

func TestPlaceholderValues(t *testing.T) {
	rules := []Rule{{Access: ReadWrite, Filter: "d/${clientid}/${username}", Allow: true}}
	for _, tt := range []struct {
		name string
		id   auth.Identity
		want bool
	}{
		{"plain", auth.Identity{ClientID: "c", Username: "u"}, true},
		{"empty username never fills a level", auth.Identity{ClientID: "c"}, false},
		{"wildcard in client ID", auth.Identity{ClientID: "+", Username: "u"}, false},
		{"slash in username", auth.Identity{ClientID: "c", Username: "u/x"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			topic := "d/" + tt.id.ClientID + "/" + tt.id.Username
			got, err := Allowed(rules, tt.id, Write, topic)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestFirstMatchWins(t *testing.T) {
	id := auth.Identity{ClientID: "c", Role: auth.RoleService}
	rules := []Rule{
		{Role: auth.RoleService, Access: Read, Filter: "a/secret", Allow: false},
		{Role: auth.RoleService, Access: Read, Filter: "a/#", Allow: true},
	}
	for topic, want := range map[string]bool{"a/secret": false, "a/public": true, "a/#": true, "b": false} {
		got, err := Allowed(rules, id, Read, topic)
		require.NoError(t, err)
		require.Equal(t, want, got, topic)
	}
}

func TestCompileErrors(t *testing.T) {
	for _, r := range []Rule{
		{Access: Read, Filter: "a/#/b"},
		{Access: Read, Filter: "a/dev-${clientid}"},
		{Access: Read, Filter: "a/b+"},
		{Access: 0, Filter: "a"},
		{Access: 8, Filter: "a"},
	} {
		_, err := compile([]Rule{r})
		require.ErrorIs(t, err, ErrRule, r.Filter)
	}
}

func TestInitRejectsWrongConfig(t *testing.T) {
	h := new(Hook)
	require.ErrorIs(t, h.Init(nil), mqtt.ErrInvalidConfigType)
	require.ErrorIs(t, h.Init(map[string]string{}), mqtt.ErrInvalidConfigType)
	require.ErrorIs(t, h.Init(&Options{}), mqtt.ErrInvalidConfigType, "Identify is required")
	ident := func(*mqtt.Client) (auth.Identity, bool) { return auth.Identity{}, false }
	require.ErrorIs(t, h.Init(&Options{Identify: ident, Rules: []Rule{{Access: Read, Filter: "#/a"}}}), ErrRule)
	require.NoError(t, h.Init(&Options{Identify: ident}))
}

func BenchmarkCheckDelivery(b *testing.B) {
	rules, _ := compile(DefaultRules())
	svc := auth.Identity{Username: "sentinel-ingestor", ClientID: "sentinel-ingestor-0", Role: auth.RoleService}
	b.ReportAllocs()
	for b.Loop() {
		check(rules, svc, Read, "fleet/eu-west/dev-00001-abcdef/telemetry")
	}
}
