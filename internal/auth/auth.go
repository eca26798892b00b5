// Package auth says who a caller is and what they may do. It verifies and
// mints the tokens onair accepts (JWT, HS256, signed with a secret the
// operator configures), and turns a token's claims, or in trusted-header
// mode (no secret) the caller's `email` header, into a Principal: a
// subject with grants (publish, view, admin), optionally scoped to one room.
//
// It knows nothing of HTTP: transports find the token (a header, a query
// parameter) and hand it here; the domain (internal/live) decides what a
// Principal's grants allow on rooms and users.
package auth

import (
	"strings"
	"time"
)

// Grant is a set of permissions.
type Grant uint8

const (
	// GrantPublish: go live (REST, WebSocket presenter, WHIP) and end one's
	// own broadcast.
	GrantPublish Grant = 1 << iota
	// GrantView: join a room and watch (REST, WebSocket viewer, WHEP).
	GrantView
	// GrantAdmin: the media admin API (/media/*, recordings, /metrics).
	GrantAdmin
	// GrantRelay: pull a room's media as another onair node (WHEP with a
	// token signed with the cluster secret; see internal/cluster).
	GrantRelay
)

// grantNames are the names of grants in tokens and on the command line.
var grantNames = []struct {
	g    Grant
	name string
}{{GrantPublish, "publish"}, {GrantView, "view"}, {GrantAdmin, "admin"}, {GrantRelay, "relay"}}

// ParseGrant reads a grant's name (publish, view, admin, relay).
func ParseGrant(name string) (Grant, bool) {
	for _, n := range grantNames {
		if strings.EqualFold(strings.TrimSpace(name), n.name) {
			return n.g, true
		}
	}
	return 0, false
}

// Names lists the grants of g by name, in a fixed order.
func (g Grant) Names() []string {
	var out []string
	for _, n := range grantNames {
		if g&n.g != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

func (g Grant) String() string { return strings.Join(g.Names(), ",") }

// Principal is a caller: who they are and what they may do.
type Principal struct {
	// Subject is the user's identity: the token's sub, or the email header
	// in trusted-header mode. It is the `email` of the protocol.
	Subject string
	Grants  Grant
	// Room, if set, limits publish and view to that one room (admin is
	// server-wide).
	Room string
	// Trusted: the identity was taken on the caller's word (no secret is
	// configured), not proven by a token.
	Trusted bool
	// ValidUntil is when the token stops being accepted (its exp plus the
	// clock skew allowed); zero for a trusted principal. Connections that
	// outlive a request (the WebSocket) end then unless given a fresh one.
	ValidUntil time.Time
}

// Trusted is the principal of trusted-header mode: the email header is
// believed, with every grant but admin, on any room. (The admin API is
// open in that mode anyway; see Authenticator.Admin.)
func Trusted(email string) Principal {
	return Principal{Subject: email, Grants: GrantPublish | GrantView, Trusted: true}
}

// Has reports whether p holds grant g, whatever the room.
func (p Principal) Has(g Grant) bool { return p.Grants&g == g }

// Can reports whether p holds grant g on room.
func (p Principal) Can(g Grant, room string) bool {
	return p.Has(g) && (p.Room == "" || p.Room == room)
}

// CanPublish reports whether p may publish room.
func (p Principal) CanPublish(room string) bool { return p.Can(GrantPublish, room) }

// CanView reports whether p may watch room.
func (p Principal) CanView(room string) bool { return p.Can(GrantView, room) }

// IsAdmin reports whether p may use the admin API.
func (p Principal) IsAdmin() bool { return p.Has(GrantAdmin) }
