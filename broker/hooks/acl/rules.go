// Package acl is the broker's topic access control: a mochi hook that
// checks every PUBLISH, SUBSCRIBE and delivery against an ordered list of
// templated rules. The first rule that matches decides; when none does, the
// answer is no (EMQX's no_match = deny). Rules name a role and a topic
// filter in which ${clientid} and ${username} fill whole topic levels, so
// one rule covers every device's own topics and no device anyone else's.
package acl

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sentinel-iot/sentinel/broker/hooks/auth"
)

// Access is what a rule is about: reading (subscribing, and receiving
// deliveries) or writing (publishing).
type Access uint8

// The accesses.
const (
	Read Access = 1 << iota
	Write
	ReadWrite = Read | Write
)

// String names the access.
func (a Access) String() string {
	switch a {
	case Read:
		return "read"
	case Write:
		return "write"
	case ReadWrite:
		return "readwrite"
	}
	return fmt.Sprintf("Access(%d)", uint8(a))
}

// Placeholders a rule's filter may use, each as a whole topic level.
const (
	ClientID = "${clientid}"
	Username = "${username}"
)

// ErrRule means a rule cannot be compiled.
var ErrRule = errors.New("acl: invalid rule")

// Rule grants or denies one role one access to the topics a filter covers.
type Rule struct {
	// Role the rule applies to; empty means every role.
	Role auth.Role
	// Access the rule is about.
	Access Access
	// Filter is an MQTT topic filter; a level may be exactly ${clientid} or
	// ${username}, filled from the client. A subscription matches when every
	// topic it can receive is covered by Filter; a publish when its topic is.
	Filter string
	// Exact, for deny rules, matches a subscription filter equal to Filter
	// only (e.g. a literal "#"), not every filter it covers.
	Exact bool
	// Allow grants when true and denies when false.
	Allow bool
}

// DefaultRules are the rules of issue 3, first match wins:
//
//   - device: never "#", "+/#" or "$SYS/#"; publishes only
//     fleet/+/<own client ID>/telemetry and .../status; subscribes only
//     fleet/+/<own client ID>/cmd.
//   - gateway (many devices on one connection): any device's telemetry and
//     status, any device's cmd.
//   - service (ingestor, recoverer): reads fleet/# (also through
//     $share/<group>/ groups), writes fleet/+/+/cmd and sentinel/#, and
//     reads back sentinel/rollout/# (the recoverer rebuilds its cohort
//     breaker from its own retained halt advisories).
//   - ops: reads sentinel/# and $SYS/#; writes nothing.
//   - anonymous (development only): everything.
//
// Anything else is denied.
func DefaultRules() []Rule {
	return []Rule{
		{Role: auth.RoleDevice, Access: Read, Filter: "#", Exact: true},
		{Role: auth.RoleDevice, Access: Read, Filter: "+/#", Exact: true},
		{Role: auth.RoleDevice, Access: Read, Filter: "$SYS/#"},
		{Role: auth.RoleDevice, Access: Write, Filter: "fleet/+/" + ClientID + "/telemetry", Allow: true},
		{Role: auth.RoleDevice, Access: Write, Filter: "fleet/+/" + ClientID + "/status", Allow: true},
		{Role: auth.RoleDevice, Access: Read, Filter: "fleet/+/" + ClientID + "/cmd", Allow: true},

		{Role: auth.RoleGateway, Access: Write, Filter: "fleet/+/+/telemetry", Allow: true},
		{Role: auth.RoleGateway, Access: Write, Filter: "fleet/+/+/status", Allow: true},
		{Role: auth.RoleGateway, Access: Read, Filter: "fleet/+/+/cmd", Allow: true},

		{Role: auth.RoleService, Access: Read, Filter: "fleet/#", Allow: true},
		{Role: auth.RoleService, Access: Write, Filter: "fleet/+/+/cmd", Allow: true},
		{Role: auth.RoleService, Access: Write, Filter: "sentinel/#", Allow: true},
		{Role: auth.RoleService, Access: Read, Filter: "sentinel/rollout/#", Allow: true},

		{Role: auth.RoleOps, Access: Read, Filter: "sentinel/#", Allow: true},
		{Role: auth.RoleOps, Access: Read, Filter: "$SYS/#", Allow: true},

		{Role: auth.RoleAnonymous, Access: ReadWrite, Filter: "#", Allow: true},
		{Role: auth.RoleAnonymous, Access: ReadWrite, Filter: "$SYS/#", Allow: true},
	}
}

// rule is a compiled Rule: its filter split into levels, placeholders
// marked.
type rule struct {
	Rule
	levels []string
}

func compile(rs []Rule) ([]rule, error) {
	out := make([]rule, len(rs))
	for i, r := range rs {
		if r.Access == 0 || r.Access&^ReadWrite != 0 {
			return nil, fmt.Errorf("%w %d: access %v", ErrRule, i, r.Access)
		}
		if r.Filter == "" {
			return nil, fmt.Errorf("%w %d: empty filter", ErrRule, i)
		}
		levels := strings.Split(r.Filter, "/")
		for j, l := range levels {
			switch {
			case l == "#" && j != len(levels)-1:
				return nil, fmt.Errorf("%w %d: %q: # must be the last level", ErrRule, i, r.Filter)
			case l == ClientID || l == Username || l == "+" || l == "#":
			case strings.ContainsAny(l, "+#") || strings.Contains(l, "${"):
				return nil, fmt.Errorf("%w %d: %q: wildcards and placeholders must fill a whole level", ErrRule, i, r.Filter)
			}
		}
		out[i] = rule{Rule: r, levels: levels}
	}
	return out, nil
}

// Check returns whether id may have access to topic (a topic name for
// Write, a topic filter for Read, possibly $share/<group>/<filter>) under
// rules, and the index of the deciding rule (-1: none matched).
func check(rules []rule, id auth.Identity, access Access, topic string) (bool, int) {
	if access == Read {
		topic = unshare(topic)
	}
	for i := range rules {
		r := &rules[i]
		if r.Access&access == 0 || (r.Role != "" && r.Role != id.Role) {
			continue
		}
		var m bool
		if r.Exact {
			m = exact(r.levels, id, topic)
		} else {
			m = covers(r.levels, id, topic)
		}
		if m {
			return r.Allow, i
		}
	}
	return false, -1
}

// unshare strips a $share/<group>/ prefix: a shared subscription receives a
// subset of what the plain filter does.
func unshare(filter string) string {
	rest, ok := strings.CutPrefix(filter, "$share/")
	if !ok {
		return filter
	}
	_, f, ok := strings.Cut(rest, "/")
	if !ok {
		return filter
	}
	return f
}

// fill returns the value of a rule level for id: the placeholder's value,
// or the level itself. A value that cannot be one whole level (empty, or
// with / + #) returns ok false, and the rule does not match.
func fill(level string, id auth.Identity) (string, bool) {
	var v string
	switch level {
	case ClientID:
		v = id.ClientID
	case Username:
		v = id.Username
	default:
		return level, true
	}
	if v == "" || strings.ContainsAny(v, "/+#") {
		return "", false
	}
	return v, true
}

func exact(levels []string, id auth.Identity, filter string) bool {
	for i, l := range levels {
		lv, ok := fill(l, id)
		if !ok {
			return false
		}
		var f string
		var more bool
		f, filter, more = strings.Cut(filter, "/")
		if f != lv || more != (i < len(levels)-1) {
			return false
		}
	}
	return true
}

// covers reports whether every topic the filter f matches is matched by
// the rule's levels. For a topic name (no wildcards) this is plain MQTT
// matching. Per MQTT 4.7.2, a wildcard first level never covers a topic
// starting with '$'. It walks f without allocating: ACL checks run on every
// delivery.
func covers(levels []string, id auth.Identity, f string) bool {
	if strings.HasPrefix(f, "$") && (levels[0] == "+" || levels[0] == "#") {
		return false
	}
	done := false // f fully consumed
	for _, l := range levels {
		if l == "#" {
			return true // covers the rest of f, and the parent level (a/# matches a)
		}
		if done {
			return false
		}
		var fl string
		fl, f, done = strings.Cut(f, "/")
		done = !done
		if fl == "#" {
			return false // f goes wider than a non-# rule level
		}
		if l == "+" {
			continue
		}
		if fl == "+" {
			return false
		}
		lv, ok := fill(l, id)
		if !ok || fl != lv {
			return false
		}
	}
	return done
}
