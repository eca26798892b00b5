package browsertest_test

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"
)

// relayOnly makes the page's next peer connections use relay candidates
// only, through those of its TURN URLs that start with prefix: what a
// browser behind a firewall that lets nothing else through ends up with.
// The page itself is unchanged (it looks RTCPeerConnection up when it
// connects).
func (p *page) relayOnly(prefix string) {
	p.t.Helper()
	if _, err := eval[bool](p, fmt.Sprintf(`(() => {
		const Real = window.RTCPeerConnection;
		window.RTCPeerConnection = function (cfg) {
			const servers = ((cfg && cfg.iceServers) || [])
				.map((s) => ({ ...s, urls: [].concat(s.urls).filter((u) => u.startsWith(%q)) }))
				.filter((s) => s.urls.length > 0);
			return new Real({ ...cfg, iceServers: servers, iceTransportPolicy: 'relay' });
		};
		window.RTCPeerConnection.prototype = Real.prototype;
		return true;
	})()`, prefix)); err != nil {
		p.t.Fatalf("%s: forcing relay: %v", p.name, err)
	}
}

// selectedLocal is the type of the viewer's selected local candidate and,
// for a relayed one, how it reaches the TURN server (udp, tcp or tls).
func (p *page) selectedLocal() (typ, relayProtocol string, err error) {
	type local struct {
		Type          string `json:"type"`
		RelayProtocol string `json:"relayProtocol"`
	}
	l, err := eval[local](p, `(async () => {
		const s = window.onair.viewer;
		const out = { type: '', relayProtocol: '' };
		if (!s || !s.pc) return out;
		const stats = await s.pc.getStats();
		stats.forEach((r) => {
			if (r.type !== 'transport' || !r.selectedCandidatePairId) return;
			const pair = stats.get(r.selectedCandidatePairId);
			const c = pair && stats.get(pair.localCandidateId);
			if (c) { out.type = c.candidateType; out.relayProtocol = c.relayProtocol || ''; }
		});
		return out;
	})()`)
	return l.Type, l.RelayProtocol, err
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// TestViewersThroughEmbeddedTURN: Chromium viewers that may use relay
// candidates only watch a Chromium presenter through the embedded TURN
// server, with the credential the page got from /signal/config: one over
// UDP, one over TLS (the HTTPS certificate, self-signed here). Both decode
// the picture and hear the sound.
func TestViewersThroughEmbeddedTURN(t *testing.T) {
	b := newBrowser(t) // first: it skips or fails when the browser cannot run
	udp, tls := freePort(t), freePort(t)
	srv := startServer(t, "-tls-self-signed", "-ice-udp-mux-port", freePort(t),
		"-turn-port", udp, "-turn-tls-port", tls, "-turn-secret", "browser-test-turn-secret",
		"-turn-allow-private-peers")

	presenter := b.open("presenter", srv.url)
	presenter.setIdentity(presenterID)
	presenter.goLive("Live for relayed viewers")

	var viewers []*page
	for _, v := range []struct{ name, prefix, protocol string }{
		{"turn-udp-viewer", "turn:127.0.0.1:" + udp + "?transport=udp", "udp"},
		{"turn-tls-viewer", "turns:127.0.0.1:" + tls, "tls"},
	} {
		p := b.open(v.name, srv.url)
		p.relayOnly(v.prefix)
		p.setIdentity(v.name + "@onair.test")
		p.clickWatch(presenterID)
		p.waitWatch("playing", 30*time.Second)
		typ, proto, err := p.selectedLocal()
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		if typ != "relay" || proto != v.protocol {
			t.Errorf("%s: selected local candidate %q over %q, want relay over %s", v.name, typ, proto, v.protocol)
		}
		t.Logf("%s: plays through the relay over %s", v.name, proto)
		viewers = append(viewers, p)
	}
	checkMediaFlows(t, viewers, 3*time.Second)
	presenter.click("end-btn")
	waitAllWatch(t, viewers, "ended", 5*time.Second)
	srv.waitEmpty(t, 5*time.Second)
}
