package app

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/config"
)

func tlsTestConfig(t *testing.T, args ...string) config.Config {
	t.Helper()
	cfg, err := config.Load(append([]string{"-addr", "127.0.0.1:0"}, args...), func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestSelfSignedServesHTTPSAndRedirects(t *testing.T) {
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	a, err := New(tlsTestConfig(t, "-tls-self-signed"), log)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 2)
	go func() { served <- a.Serve(l) }()
	go func() { served <- a.ServeRedirect(rl) }()

	client := &http.Client{
		Timeout:       5 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + l.Addr().String() + "/signal/healthcheck/_check")
	if err != nil {
		t.Fatalf("HTTPS request: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("health over HTTPS: %s", resp.Status)
	}
	if names := resp.TLS.PeerCertificates[0].IPAddresses; len(names) == 0 {
		t.Error("the self-signed certificate names no IP address")
	} else if err := resp.TLS.PeerCertificates[0].VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("certificate does not cover 127.0.0.1: %v", err)
	}

	resp, err = client.Get("http://" + rl.Addr().String() + "/signal/room/list?x=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	want := "https://127.0.0.1:" + port + "/signal/room/list?x=1"
	if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != want {
		t.Errorf("redirect: %s to %q, want 307 to %q", resp.Status, resp.Header.Get("Location"), want)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "self-signed") {
		t.Errorf("self-signed mode must warn in the log; log:\n%s", logs.String())
	}
}

func TestTLSFilesErrorSaysWhatToFix(t *testing.T) {
	_, err := New(tlsTestConfig(t, "-tls-cert", "/nonexistent/cert.pem", "-tls-key", "/nonexistent/key.pem"),
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		t.Fatal("New accepted certificate files that do not exist")
	}
	for _, want := range []string{"/nonexistent/cert.pem", "-tls-cert", "-tls-self-signed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestRedirectKeepsIPv6Host(t *testing.T) {
	a := &App{}
	a.httpsPort.Store("8443")
	for host, want := range map[string]string{
		"[::1]:8080":       "https://[::1]:8443/x",
		"example.com":      "https://example.com:8443/x",
		"example.com:8080": "https://example.com:8443/x",
	} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "http://"+host+"/x", nil)
		a.redirectToHTTPS(w, r)
		if got := w.Header().Get("Location"); got != want {
			t.Errorf("Host %s: Location %q, want %q", host, got, want)
		}
	}
}
