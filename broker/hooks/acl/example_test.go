package acl_test

import (
	"fmt"

	"github.com/sentinel-iot/sentinel/broker/hooks/acl"
	"github.com/sentinel-iot/sentinel/broker/hooks/auth"
)

// A device may publish its own telemetry and read its own commands, and
// nothing of any other device's.
func ExampleAllowed() {
	dev := auth.Identity{Username: "dev-00042", ClientID: "dev-00042", Role: auth.RoleDevice}
	for _, q := range []struct {
		access acl.Access
		topic  string
	}{
		{acl.Write, "fleet/eu-west/dev-00042/telemetry"},
		{acl.Read, "fleet/+/dev-00042/cmd"},
		{acl.Write, "fleet/eu-west/dev-00043/telemetry"},
		{acl.Read, "fleet/+/+/cmd"},
		{acl.Read, "#"},
	} {
		ok, _ := acl.Allowed(acl.DefaultRules(), dev, q.access, q.topic)
		fmt.Printf("%-5s %-34s %v\n", q.access, q.topic, ok)
	}
	// Output:
	// write fleet/eu-west/dev-00042/telemetry  true
	// read  fleet/+/dev-00042/cmd              true
	// write fleet/eu-west/dev-00043/telemetry  false
	// read  fleet/+/+/cmd                      false
	// read  #                                  false
}

// Rules are templates: ${clientid} and ${username} fill whole topic
// levels, the first matching rule decides, and no match denies.
func ExampleRule() {
	rules := []acl.Rule{
		{Role: auth.RoleService, Access: acl.Read, Filter: "tenants/${username}/secret", Allow: false},
		{Role: auth.RoleService, Access: acl.ReadWrite, Filter: "tenants/${username}/#", Allow: true},
	}
	svc := auth.Identity{Username: "acme", ClientID: "acme-1", Role: auth.RoleService}
	for _, topic := range []string{"tenants/acme/orders", "tenants/acme/secret", "tenants/globex/orders"} {
		ok, _ := acl.Allowed(rules, svc, acl.Read, topic)
		fmt.Println(topic, ok)
	}
	// Output:
	// tenants/acme/orders true
	// tenants/acme/secret false
	// tenants/globex/orders false
}
