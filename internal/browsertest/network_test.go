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

// tcpOnly makes the page's next peer connections reach the server over
// TCP only: they neither signal nor accept UDP candidates, so no UDP path
// can be found from either side (the server learns of none of the
// browser's UDP ports, the browser of none of the server's), as behind a
// firewall that drops UDP. The page itself is unchanged.
func (p *page) tcpOnly() {
	p.t.Helper()
	if _, err := eval[bool](p, `(() => {
		const Real = window.RTCPeerConnection;
		const udp = (line) => / udp /i.test(line || '');
		window.RTCPeerConnection = function (cfg) {
			const pc = new Real(cfg);
			const listen = pc.addEventListener.bind(pc);
			pc.addEventListener = (type, fn, ...rest) => listen(type, type !== 'icecandidate' ? fn
				: (e) => { if (!(e.candidate && udp(e.candidate.candidate))) fn(e); }, ...rest);
			const addCandidate = pc.addIceCandidate.bind(pc);
			pc.addIceCandidate = (c) => (c && udp(c.candidate) ? Promise.resolve() : addCandidate(c));
			const setRemote = pc.setRemoteDescription.bind(pc);
			pc.setRemoteDescription = (d) => setRemote(!d || !d.sdp ? d : { type: d.type,
				sdp: d.sdp.split('\r\n').filter((l) => !(l.startsWith('a=candidate:') && udp(l))).join('\r\n') });
			return pc;
		};
		window.RTCPeerConnection.prototype = Real.prototype;
		return true;
	})()`); err != nil {
		p.t.Fatalf("%s: forcing TCP: %v", p.name, err)
	}
}

// selectedLocal is the type of the viewer's selected local candidate, for
// a relayed one how it reaches the TURN server (udp, tcp or tls), and its
// protocol (udp or tcp).
func (p *page) selectedLocal() (typ, relayProtocol, protocol string, err error) {
	type local struct {
		Type          string `json:"type"`
		RelayProtocol string `json:"relayProtocol"`
		Protocol      string `json:"protocol"`
	}
	l, err := eval[local](p, `(async () => {
		const s = window.onair.viewer;
		const out = { type: '', relayProtocol: '', protocol: '' };
		if (!s || !s.pc) return out;
		const stats = await s.pc.getStats();
		stats.forEach((r) => {
			if (r.type !== 'transport' || !r.selectedCandidatePairId) return;
			const pair = stats.get(r.selectedCandidatePairId);
			const c = pair && stats.get(pair.localCandidateId);
			if (c) { out.type = c.candidateType; out.relayProtocol = c.relayProtocol || ''; out.protocol = c.protocol; }
		});
		return out;
	})()`)
	return l.Type, l.RelayProtocol, l.Protocol, err
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
		typ, proto, _, err := p.selectedLocal()
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

// TestViewerOverICETCP: a Chromium viewer that can use no UDP path watches
// over ICE-TCP, the server's -ice-tcp-port, beside a viewer on UDP; both
// decode the picture and hear the sound.
func TestViewerOverICETCP(t *testing.T) {
	b := newBrowser(t) // first: it skips or fails when the browser cannot run
	srv := startServer(t, "-tls-self-signed", "-ice-tcp-port", freePort(t))

	presenter := b.open("presenter", srv.url)
	presenter.setIdentity(presenterID)
	presenter.goLive("Live for TCP viewers")

	tcp := b.open("tcp-viewer", srv.url)
	tcp.tcpOnly()
	udp := b.open("udp-viewer", srv.url)
	for _, v := range []struct {
		p        *page
		protocol string
	}{{tcp, "tcp"}, {udp, "udp"}} {
		v.p.setIdentity(v.p.name + "@onair.test")
		v.p.clickWatch(presenterID)
		v.p.waitWatch("playing", 30*time.Second)
		typ, _, proto, err := v.p.selectedLocal()
		if err != nil {
			t.Fatalf("%s: %v", v.p.name, err)
		}
		if proto != v.protocol {
			t.Errorf("%s: selected local candidate %s over %q, want %s", v.p.name, typ, proto, v.protocol)
		}
		t.Logf("%s: plays over %s (%s candidate)", v.p.name, proto, typ)
	}
	checkMediaFlows(t, []*page{tcp, udp}, 3*time.Second)
	presenter.click("end-btn")
	waitAllWatch(t, []*page{tcp, udp}, "ended", 5*time.Second)
	srv.waitEmpty(t, 5*time.Second)
}
