package app_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/testpeer"
	"github.com/onair-live/onair/internal/tlsutil"
)

// A viewer that may use only relay candidates, and reaches the TURN server
// only over TLS (as through a firewall that lets out nothing but HTTPS),
// watches over WHEP: its TURN credential comes in the Link headers, the
// TURN server presents the HTTPS certificate (which the viewer verifies),
// and the media arrives whole. The broadcast is published over WHIP, the
// API being on HTTPS.
func TestRelayOnlyViewerOverTURNTLS(t *testing.T) {
	cert, err := tlsutil.SelfSigned([]string{"127.0.0.1"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := writeKeyPair(t, cert)
	tlsPort := freePort(t, "tcp")
	srv := startTURNServer(t, func(c *config.Config) {
		c.TLSCert, c.TLSKey, c.TURNTLSPort = certFile, keyFile, tlsPort
	})
	roots := x509.NewCertPool()
	roots.AddCert(cert.Leaf)
	trust := &tls.Config{RootCAs: roots}
	wc := testpeer.NewWHIPClientTLS(srv.Root, trust)

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	const room = "ann@example.com"
	pub, err := testpeer.NewPublisher(testpeer.PublisherOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	ps, err := pub.PublishWHIP(ctx, wc, room, testpeer.WHIPOptions{})
	if err != nil {
		t.Fatalf("WHIP over HTTPS: %v", err)
	}
	t.Cleanup(func() { ps.Delete() })
	if err := pub.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}

	r := wc.Do(http.MethodOptions, "/whep/"+room, nil, "")
	if err := r.Want(http.StatusNoContent); err != nil {
		t.Fatal(err)
	}
	servers := onlyURLs(linkICEServers(r.Header), "turns:127.0.0.1:", "?transport=tcp")
	if len(servers) != 1 {
		t.Fatalf("WHEP's Link headers name no TURN server over TLS: %q", r.Header.Values("Link"))
	}
	wantCredential(t, servers[0])
	// As some TURN clients do (RFC 7443), the viewer asks for ALPN "stun.turn".
	turnTrust := trust.Clone()
	turnTrust.NextProtos = []string{"stun.turn"}
	vp, err := testpeer.NewViewerPeerOn(testpeer.Network{Relay: servers, TURNTLS: turnTrust})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vp.Close)
	vs, err := vp.WatchWHEP(ctx, wc, room, testpeer.WHIPOptions{})
	if err != nil {
		t.Fatalf("WHEP over HTTPS: %v", err)
	}
	t.Cleanup(func() { vs.Delete() })
	if got := onlyURLs(linkICEServers(vs.Created.Header), "turns:", ""); len(got) != 1 || got[0].Username == servers[0].Username {
		t.Errorf("WHEP's 201 names %d TURN servers over TLS (%+v), want one with a credential of its own", len(got), got)
	}
	if err := vp.WaitMedia(ctx, 30); err != nil {
		t.Fatalf("relay-only viewer over TURN over TLS: %v", err)
	}
	wantRelayed(t, vp)
}

// linkICEServers reads the ICE servers of WHIP/WHEP Link headers:
// <url>; rel="ice-server"; username="…"; credential="…"; ….
func linkICEServers(h http.Header) []webrtc.ICEServer {
	var out []webrtc.ICEServer
	for _, v := range h.Values("Link") {
		for _, link := range strings.Split(v, ",") {
			parts := strings.Split(link, ";")
			u := strings.Trim(strings.TrimSpace(parts[0]), "<>")
			s := webrtc.ICEServer{URLs: []string{u}}
			ice := false
			for _, p := range parts[1:] {
				k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
				val = strings.Trim(val, `"`)
				switch k {
				case "rel":
					ice = val == "ice-server"
				case "username":
					s.Username = val
				case "credential":
					s.Credential = val
				}
			}
			if ice {
				out = append(out, s)
			}
		}
	}
	return out
}

// writeKeyPair writes cert and its key as PEM files in a test directory.
func writeKeyPair(t *testing.T, cert tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
