package sfu

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/media"
)

// offerSeeds are offers as clients send them (a browser's sendonly offer,
// made here by pion), and broken ones, to start the fuzzers from.
func offerSeeds(f *testing.F) []string {
	f.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		f.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		f.Fatal(err)
	}
	defer pc.Close()
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			f.Fatal(err)
		}
	}
	o, err := pc.CreateOffer(nil)
	if err != nil {
		f.Fatal(err)
	}
	return []string{
		o.SDP,
		"",
		"v=0",
		"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\na=mid:0\r\n",
		"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 300 -1 abc\r\na=rtpmap:300 opus/48000/2\r\na=fmtp:x\r\na=extmap:99999 urn:x\r\n",
		"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;profile-level-id=42e01f\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n",
	}
}

// FuzzParseOffer: no offer makes parseOffer panic, and what it accepts
// holds only audio and video sections with codecs the SFU forwards.
func FuzzParseOffer(f *testing.F) {
	for _, s := range offerSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, offer string) {
		sections, err := parseOffer(offer)
		if err != nil {
			if !errors.Is(err, media.ErrBadOffer) {
				t.Fatalf("error %v is not ErrBadOffer", err)
			}
			return
		}
		for _, s := range sections {
			if s.kind != webrtc.RTPCodecTypeAudio && s.kind != webrtc.RTPCodecTypeVideo {
				t.Fatalf("section of kind %v", s.kind)
			}
			for _, c := range s.codecs {
				if !strings.HasPrefix(c.mime, "audio/") && !strings.HasPrefix(c.mime, "video/") {
					t.Fatalf("codec %q accepted", c.mime)
				}
			}
		}
	})
}

// FuzzPublisherOffer: a presenter's offer, whatever it is, is answered or
// refused with an error by a publisher endpoint (pion's negotiation
// included), never a panic or a hang, and the endpoint releases cleanly.
func FuzzPublisherOffer(f *testing.F) {
	for _, s := range offerSeeds(f) {
		f.Add(s)
	}
	e, err := New(Config{Loopback: true, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = e.Close() })
	f.Fuzz(func(t *testing.T, offer string) {
		pl, err := e.NewPipeline("fuzz")
		if err != nil {
			t.Fatal(err)
		}
		defer pl.Release()
		ep, err := pl.NewEndpoint(media.Publisher, "presenter:fuzz", media.Events{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		answer, err := ep.ProcessOffer(ctx, offer)
		if ctx.Err() != nil {
			t.Fatalf("ProcessOffer did not return within 5 s: %v", err)
		}
		if err == nil && !strings.HasPrefix(answer, "v=0") {
			t.Fatalf("answer is not SDP: %q", answer)
		}
	})
}
