package app

import (
	"log/slog"

	"github.com/onair-live/onair/internal/auth"
	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/httpapi"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/ratelimit"
	"github.com/onair-live/onair/internal/whip"
	"github.com/onair-live/onair/internal/wsapi"
)

// access is who may do what, and how much, for one configuration: the
// authenticator every transport asks, the per-address limit on new
// sessions, and the origins allowed.
type access struct {
	authn    *auth.Authenticator
	sessions *ratelimit.PerAddress // nil: no limit
	origins  []string              // nil: any
}

// rejectionReasons are every reason a refusal is counted under, so that
// the metrics show each from the start.
var rejectionReasons = []string{
	live.RejectForbidden, live.RejectOtherUser, live.RejectRoomFull, live.RejectTooManyRooms, live.RejectTooManyCandidates,
	httpapi.RejectUnauthorized, httpapi.RejectSessionRate, httpapi.RejectBodyTooLarge, httpapi.RejectOrigin,
	wsapi.RejectSessionBound, wsapi.RejectMessageRate, wsapi.RejectMessageTooLarge, wsapi.RejectBadMessage,
	whip.RejectForbidden,
	rejectMaxConnections, rejectConnectionsPerAddress, wsapi.RejectSilent, wsapi.RejectUnbound, wsapi.RejectTokenExpired,
}

func newAccess(cfg config.Config, log *slog.Logger) (*access, error) {
	a := &access{sessions: ratelimit.NewPerAddress(cfg.MaxSessionsPerSecond, int(2*cfg.MaxSessionsPerSecond), cfg.SessionsLimitExempt)}
	if cfg.Auth.Tokens() {
		v, err := auth.NewVerifier(cfg.AuthKeys)
		if err != nil {
			return nil, err
		}
		a.authn = auth.NewAuthenticator(v)
		log.Info("tokens required", "secrets", len(cfg.AuthKeys))
	} else {
		a.authn = auth.NewAuthenticator(nil)
		log.Warn("authentication is off: the email header is trusted, so anyone may act as any user, and the media admin API is open; set ONAIR_AUTH_SECRET (or -auth-secret-file) to require tokens")
	}
	for _, o := range cfg.AllowedOrigins {
		if o == "*" {
			return a, nil
		}
	}
	a.origins = cfg.AllowedOrigins
	return a, nil
}
