package config

import (
	"errors"
	"flag"
	"time"
)

// HLS is the Low-Latency HLS tier (internal/hls).
type HLS struct {
	// HLSEnabled serves every live room whose codecs can be packaged as LL-HLS at
	// /hls/{room}/index.m3u8.
	HLSEnabled bool
	// HLSSegment and HLSPart are the least durations of a segment (which
	// also starts at a keyframe) and of a part.
	HLSSegment time.Duration
	HLSPart    time.Duration
	// HLSIdleTimeout: a room's muxer stops this long after its last HLS
	// request.
	HLSIdleTimeout time.Duration
}

func (h *HLS) register(fs *flag.FlagSet) {
	fs.BoolVar(&h.HLSEnabled, "hls", true, "serve every live room as Low-Latency HLS at /hls/{room}/index.m3u8")
	fs.DurationVar(&h.HLSSegment, "hls-segment", time.Second, "least duration of an HLS segment (segments start at keyframes)")
	fs.DurationVar(&h.HLSPart, "hls-part", 200*time.Millisecond, "least duration of an LL-HLS part")
	fs.DurationVar(&h.HLSIdleTimeout, "hls-idle-timeout", 30*time.Second, "stop a room's HLS muxer this long after its last request")
}

// check rejects settings that cannot work.
func (h HLS) check() error {
	if !h.HLSEnabled {
		return nil
	}
	if h.HLSSegment <= 0 || h.HLSPart <= 0 || h.HLSPart > h.HLSSegment {
		return errors.New("-hls-segment and -hls-part must be positive, the part no longer than the segment")
	}
	if h.HLSIdleTimeout < time.Second {
		return errors.New("-hls-idle-timeout must be at least 1s")
	}
	return nil
}
