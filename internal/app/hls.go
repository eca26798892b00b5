package app

import (
	"log/slog"

	"github.com/onair-live/onair/internal/auth"
	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/hls"
	"github.com/onair-live/onair/internal/live"
)

// newHLS builds the Low-Latency HLS tier, or nil with -hls=false.
func newHLS(cfg config.Config, log *slog.Logger, svc *live.Service, authn *auth.Authenticator) *hls.Server {
	if !cfg.HLSEnabled {
		return nil
	}
	return hls.New(svc, hls.Config{Auth: authn, Segment: cfg.HLSSegment, Part: cfg.HLSPart,
		IdleTimeout: cfg.HLSIdleTimeout, Logger: log})
}

// hlsCounts reads the HLS tier's numbers for metrics; nil without it.
func hlsCounts(s *hls.Server) func() (viewers, muxers int) {
	if s == nil {
		return nil
	}
	return func() (int, int) {
		c := s.Counts()
		return c.Viewers, c.Muxers
	}
}
