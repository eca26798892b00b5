package sfu

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/leakcheck"
	"github.com/onair-live/onair/internal/media"
)

// Viewers that offer while the engine closes are answered or refused, and
// once the engine has closed and they have been released no writer socket
// is open and no shard counts a viewer.
func TestEngineCloseWhileViewersJoin(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	eng, mp := newLoopbackPipeline(t, Config{Writers: 2}, "closing")
	api := clientAPI(t)
	video, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", "presenter")
	pub, _ := startTestPresenter(ctx, t, api, mp, video)
	defer func() { _ = pub.Close() }()

	const viewers = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	var eps []media.Endpoint
	var pcs []*webrtc.PeerConnection
	started := make(chan struct{}, viewers)
	answered := make(chan struct{}, viewers)
	for range viewers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started <- struct{}{}
			pc, err := api.NewPeerConnection(webrtc.Configuration{})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			pcs = append(pcs, pc)
			mu.Unlock()
			if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo,
				webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
				t.Error(err)
				return
			}
			ep, err := mp.NewEndpoint(media.Subscriber, "viewer", media.Events{})
			if err != nil {
				return // the pipeline has closed
			}
			mu.Lock()
			eps = append(eps, ep)
			mu.Unlock()
			offer, err := pc.CreateOffer(nil)
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := ep.ProcessOfferGathered(ctx, offer.SDP); err == nil {
				answered <- struct{}{}
			}
		}()
	}
	for range viewers {
		<-started
	}
	<-answered // close while the others are joining
	_ = eng.Close()
	wg.Wait()
	t.Logf("%d of %d viewers answered", len(answered)+1, viewers)
	for _, ep := range eps {
		ep.Release()
	}
	for _, pc := range pcs {
		_ = pc.Close()
	}
	if n, _ := eng.writers.sockets(); n != 0 {
		t.Errorf("%d writer sockets open after the engine closed", n)
	}
	eng.writers.mu.Lock()
	for _, sh := range eng.writers.shards {
		if sh.users != 0 {
			t.Errorf("shard %d counts %d viewers after all were released", sh.idx, sh.users)
		}
	}
	eng.writers.mu.Unlock()
}
