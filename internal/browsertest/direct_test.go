package browsertest_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/testpeer"
)

// TestChromiumViewerSentDirectly: a bare RTCPeerConnection in Chromium
// plays a broadcast without simulcast over WHEP; the server encrypts and
// sends its media itself (sfu/srtpout.go), with SRTP keys derived from
// Chromium's DTLS handshake (the server answers setup:passive to its
// actpass offer), and Chromium decrypts every packet: its packet count
// grows with no packet reported lost.
func TestChromiumViewerSentDirectly(t *testing.T) {
	b := newBrowser(t)    // first: it skips or fails when the browser cannot run
	srv := startServer(t) // plain HTTP: the pion presenter does not trust a self-signed certificate
	testpeer.MustPresenter(t, srv.ts, presenterID, presenterID, testpeer.PresenterOptions{})

	p := b.open("bare-whep", srv.url)
	whep := srv.url + "/whep/" + url.PathEscape(presenterID)
	if _, err := eval[bool](p, `(async () => {
		const pc = new RTCPeerConnection();
		pc.addTransceiver('video', { direction: 'recvonly' });
		pc.addTransceiver('audio', { direction: 'recvonly' });
		await pc.setLocalDescription(await pc.createOffer());
		await new Promise((done) => {
			if (pc.iceGatheringState === 'complete') return done();
			pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && done();
		});
		const r = await fetch(`+"`"+whep+"`"+`, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp });
		if (r.status !== 201) throw new Error('WHEP: ' + r.status + ' ' + await r.text());
		await pc.setRemoteDescription({ type: 'answer', sdp: await r.text() });
		window.bare = pc;
		return true;
	})()`); err != nil {
		t.Fatal(err)
	}
	inbound := `(async () => {
		let packets = 0, lost = 0;
		(await window.bare.getStats()).forEach((r) => {
			if (r.type === 'inbound-rtp') { packets += r.packetsReceived; lost += r.packetsLost; }
		});
		return { packets, lost };
	})()`
	type counts struct{ Packets, Lost int }
	var c counts
	if !waitFor(20*time.Second, func() bool {
		var err error
		c, err = eval[counts](p, inbound)
		return err == nil && c.Packets >= 300
	}) {
		t.Fatalf("Chromium received %d packets (lost %d), want 300", c.Packets, c.Lost)
	}
	t.Logf("Chromium received %d packets, lost %d", c.Packets, c.Lost)
	if c.Lost > 0 {
		t.Errorf("Chromium lost %d packets on loopback", c.Lost)
	}
	checkSentDirectly(t, srv, 1)
}

// checkSentDirectly checks that the server sends the media of n viewers
// itself, not through pion's RTP sender.
func checkSentDirectly(t *testing.T, srv *server, n int) {
	t.Helper()
	var eps []struct {
		EndpointName string `json:"endpointName"`
		Stats        struct {
			PacketsOut    uint64 `json:"packetsOut"`
			PacketsDirect uint64 `json:"packetsDirect"`
		} `json:"stats"`
	}
	srv.endpoints(t, presenterID, &eps)
	direct := 0
	for _, ep := range eps {
		// The two counters are read one after the other while media flows.
		if st := ep.Stats; st.PacketsOut > 0 && st.PacketsDirect >= st.PacketsOut*99/100 {
			direct++
		}
	}
	if direct != n {
		t.Errorf("%d viewers sent directly, want %d: %+v", direct, n, eps)
	}
}
