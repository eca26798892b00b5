package auth

import "strings"

// Authenticator turns what a request carries into a Principal, in one of
// two modes: with a Verifier, a valid token is required and the email
// header is ignored; without one (trusted-header mode, for clients that
// only send an email header), the email header is believed.
type Authenticator struct {
	v *Verifier // nil: trusted-header mode
}

// NewAuthenticator returns an authenticator that requires tokens verified
// by v, or, with v nil, trusts the email header.
func NewAuthenticator(v *Verifier) *Authenticator { return &Authenticator{v: v} }

// Open reports trusted-header mode: no token is needed or checked.
func (a *Authenticator) Open() bool { return a == nil || a.v == nil }

// Authenticate returns the caller's principal: the token's (which must be
// valid) with tokens on, Trusted(email) without.
func (a *Authenticator) Authenticate(token, email string) (Principal, error) {
	if a.Open() {
		return Trusted(email), nil
	}
	return a.v.Verify(token)
}

// Admin reports whether p may use the admin API: with tokens on, only an
// admin grant does; in trusted-header mode the admin API stays open (the
// clients of that mode call it without credentials).
func (a *Authenticator) Admin(p Principal) bool { return a.Open() || p.IsAdmin() }

// TokenFrom picks the token out of what a request carries: an
// Authorization header with the Bearer scheme, else a token query
// parameter (for WebSockets and players that cannot set headers).
func TokenFrom(authorization, query string) string {
	if scheme, tok, ok := strings.Cut(strings.TrimSpace(authorization), " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(tok)
	}
	return strings.TrimSpace(query)
}

// ParseKeys reads a key file: one secret per line, the first the current
// one (it signs what `onair token` mints), the others still accepted;
// blank lines and lines starting with # are skipped.
func ParseKeys(data []byte) [][]byte {
	var keys [][]byte
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		keys = append(keys, []byte(line))
	}
	return keys
}
