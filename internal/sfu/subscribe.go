package sfu

import (
	"context"
	"fmt"
	"strings"

	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/media"
	"github.com/onair-live/onair/internal/sfu/udpbatch"
)

// negotiateSubscriber answers a viewer's offer with the broadcast's tracks,
// each in the codec the presenter sends, under the viewer's payload type. It
// waits (bounded) for the presenter's offer if that has not been negotiated.
func (e *Endpoint) negotiateSubscriber(ctx context.Context, offer string, gathered bool) (string, error) {
	sections, err := parseOffer(offer)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-e.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	tracks, err := e.p.publishedTracks(ctx)
	if err != nil {
		return "", err
	}
	tracks = e.relayedTracks(tracks, sections)
	layered := perLayer(tracks)
	pts, err := viewerPayloadTypes(sections, tracks)
	if err != nil {
		return "", err
	}
	sub := newSubscriber(e)
	if e.p.engine.shardSockets() {
		// Served on its writer's socket, with the shard's other viewers.
		if sub.home, sub.homeSock, err = e.reserveShard(); err != nil {
			return "", err
		}
		if !wantsDTLSServer(offer) {
			sub.direct = newDirectPath(sub)
		}
	} else if e.p.engine.udpMux == nil && !e.p.engine.cfg.SendPerPacket {
		// Its own sockets: batch the writer's sends. (On the shared port of
		// a UDP mux, every write is sent at once.)
		if sub.batch, err = udpbatch.NewNet(e.p.engine.batches); err != nil {
			return "", fmt.Errorf("sfu: network: %w", err)
		}
		if !wantsDTLSServer(offer) {
			sub.direct = newDirectPath(sub) // unless simulcast (subscriberAPI)
		}
	}
	api, err := e.p.engine.subscriberAPI(tracks, pts, sub)
	if err != nil {
		return "", fmt.Errorf("sfu: media engine: %w", err)
	}
	for _, t := range tracks {
		if pt, ok := pts[t]; ok {
			d := newDownTrack(t, sub, pt)
			if t.group != nil && !layered {
				d.sel = newLayerSel(d, t.group, int8(e.pin.Load())-1)
			}
			sub.downs = append(sub.downs, d)
		}
	}
	if err := e.setRole(nil, sub); err != nil {
		return "", err
	}
	pc, err := e.newPC(api)
	if err != nil {
		return "", err
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", fmt.Errorf("%w: %v", media.ErrBadOffer, err)
	}
	for _, d := range sub.downs {
		sender, err := pc.AddTrack(d)
		if err != nil {
			return "", fmt.Errorf("sfu: add %s track: %w", d.up.kind, err)
		}
		d := d
		e.goroutine(func() { d.readRTCP(sender) })
		if d == sub.downs[0] { // one ICE transport for all (BUNDLE)
			sub.ice.Store(sender.Transport().ICETransport())
			if sub.direct != nil {
				sub.direct.watch(sender.Transport().ICETransport())
			}
		}
	}
	answer, err := e.finishOffer(ctx, pc, gathered)
	if err != nil {
		return "", err
	}
	e.startSelectors(sub, tracks)
	return answer, nil
}

// viewerPayloadTypes matches each published track to the payload type the
// viewer's offer gives its codec. A track of a kind the viewer offers must
// match; the viewer may leave a kind out, but must take something.
func viewerPayloadTypes(sections []offeredSection, tracks []*upTrack) (map[*upTrack]uint8, error) {
	pts := map[*upTrack]uint8{}
	var missing []string
	for _, t := range tracks {
		offered := false
		for _, sec := range sections {
			if sec.kind != t.kind {
				continue
			}
			offered = true
			if pt, ok := matchViewer(sec, t.codec); ok {
				pts[t] = pt
				break
			}
		}
		if _, ok := pts[t]; offered && !ok {
			missing = append(missing, t.codec.MimeType)
		}
	}
	if len(pts) == 0 || len(missing) > 0 {
		return nil, fmt.Errorf("%w: the broadcast is %s", media.ErrIncompatible, strings.Join(codecNames(tracks), " + "))
	}
	return pts, nil
}

func codecNames(tracks []*upTrack) []string {
	out := make([]string, len(tracks))
	for i, t := range tracks {
		out[i] = strings.TrimPrefix(strings.TrimPrefix(t.codec.MimeType, "video/"), "audio/")
	}
	return out
}
