package httpapi

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/onair-live/onair/internal/auth"
	"github.com/onair-live/onair/internal/live"
)

// Access on the HTTP routes. The transport authenticates (who is calling:
// a token, or the email header in trusted-header mode), gates the admin
// API, bounds how often one address may open sessions, and checks browser
// origins. What a caller may do to rooms and users is the domain's to say
// (live/access.go).

// Reasons of the refusals made here, for Config.OnRejected.
const (
	RejectUnauthorized = "unauthorized"   // no valid token
	RejectSessionRate  = "session_rate"   // Config.Sessions: too many new sessions from one address
	RejectBodyTooLarge = "body_too_large" // a request body over MaxBodyBytes
	RejectOrigin       = "origin"         // an Origin not in AllowedOrigins
)

// Limiter says whether a client address may open one more session now, and
// if not, how long until it may.
type Limiter interface {
	Allow(addr string) (bool, time.Duration)
}

func (a *api) rejected(reason string) {
	if a.cfg.OnRejected != nil {
		a.cfg.OnRejected(reason)
	}
}

// authenticate returns the caller's principal, or answers 401 and false.
func (a *api) authenticate(w http.ResponseWriter, r *http.Request) (auth.Principal, bool) {
	who, err := a.cfg.Auth.Authenticate(auth.TokenFrom(r.Header.Get("Authorization"), r.URL.Query().Get("token")), r.Header.Get("email"))
	if err != nil {
		a.rejected(RejectUnauthorized)
		w.Header().Set("WWW-Authenticate", `Bearer realm="onair"`)
		writeError(w, r, a.log, live.ErrUnauthorized.With("%v", err))
		return auth.Principal{}, false
	}
	return who, true
}

// authenticated serves next only to callers with a valid token (anyone in
// trusted-header mode).
func (a *api) authenticated(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, ok := a.authenticate(w, r); ok {
			next(w, r)
		}
	}
}

// admin serves next only to admins: callers whose token has the admin
// grant. In trusted-header mode the admin API stays open (that mode's
// clients call it without credentials).
func (a *api) admin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who, ok := a.authenticate(w, r)
		if !ok {
			return
		}
		if !a.cfg.Auth.Admin(who) {
			a.rejected(live.RejectForbidden)
			writeError(w, r, a.log, live.ErrForbidden.With("%s has no admin grant", who.Subject))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// limited serves next only while the client's address is within
// Config.Sessions, and answers 429 with Retry-After otherwise: as the
// protocol's error body, or as plain text for WHIP and WHEP clients.
func (a *api) limited(next http.Handler, plain bool) http.Handler {
	if a.cfg.Sessions == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok, wait := a.cfg.Sessions.Allow(r.RemoteAddr)
		if ok {
			next.ServeHTTP(w, r)
			return
		}
		a.rejected(RejectSessionRate)
		secs := max(1, int(math.Ceil(wait.Seconds())))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		detail := fmt.Sprintf("too many new sessions from one address; retry in %d s", secs)
		if plain {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, detail+"\n")
			a.log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "status", http.StatusTooManyRequests, "remote", r.RemoteAddr)
			return
		}
		writeError(w, r, a.log, live.ErrTooManyRequests.With("%s", detail))
	})
}

// origins is which browser origins may call: any, or those matching one of
// the patterns. A pattern is matched, case-insensitively with path.Match,
// against the origin's host (host:port), or against scheme://host if it has
// a scheme, as coder/websocket matches OriginPatterns; the server's own
// host is always allowed.
type origins struct {
	any      bool
	patterns []string
}

func newOrigins(list []string) origins {
	o := origins{any: len(list) == 0}
	for _, p := range list {
		if p == "*" {
			o.any = true
		}
		o.patterns = append(o.patterns, strings.ToLower(p))
	}
	return o
}

// allowed reports whether the request's Origin (if any) may call.
func (o origins) allowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || o.any {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, p := range o.patterns {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, _ := path.Match(p, strings.ToLower(target)); ok {
			return true
		}
	}
	return false
}
