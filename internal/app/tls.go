package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/tlsutil"
)

// selfSignedValidity is how long a throwaway certificate lasts; a new one is
// made at every start anyway.
const selfSignedValidity = 30 * 24 * time.Hour

// serverTLS returns the TLS configuration cfg asks for, or nil for plain
// HTTP. Its errors say which setting to fix.
func serverTLS(cfg config.Config, log *slog.Logger, now time.Time) (*tls.Config, error) {
	switch {
	case cfg.TLSSelfSigned:
		cert, err := tlsutil.SelfSigned(selfSignedHosts(cfg.Addr), now, selfSignedValidity)
		if err != nil {
			return nil, fmt.Errorf("TLS: cannot make a self-signed certificate: %w", err)
		}
		log.Warn("serving HTTPS with a throwaway self-signed certificate: browsers will warn about it and it changes at every start. "+
			"For local demos only; in production give -tls-cert and -tls-key",
			"component", "tls", "names", tlsutil.Names(cert.Leaf), "sha256", tlsutil.Fingerprint(cert.Leaf))
		return tlsutil.ServerConfig(cert), nil
	case cfg.TLSCert != "" || cfg.TLSKey != "":
		cert, err := tlsutil.LoadKeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("TLS: %w (set -tls-cert and -tls-key, or ONAIR_TLS_CERT and ONAIR_TLS_KEY, "+
				"to PEM files onair can read; for a local demo use -tls-self-signed)", err)
		}
		leaf := cert.Leaf
		attrs := []any{"component", "tls", "cert", cfg.TLSCert, "names", tlsutil.Names(leaf), "notAfter", leaf.NotAfter.UTC()}
		switch {
		case now.After(leaf.NotAfter):
			log.Warn("TLS certificate has expired: browsers will refuse it; renew it", attrs...)
		case now.Before(leaf.NotBefore):
			log.Warn("TLS certificate is not valid yet: check the clock or the certificate", attrs...)
		default:
			log.Info("serving HTTPS", attrs...)
		}
		return tlsutil.ServerConfig(cert), nil
	}
	return nil, nil
}

// selfSignedHosts are the names a demo certificate covers: this machine by
// every local name, and the host of the listen address if it has one.
func selfSignedHosts(addr string) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" && h != "localhost" {
		hosts = append(hosts, h)
	}
	if h, _, err := net.SplitHostPort(addr); err == nil && h != "" && h != "localhost" {
		if ip := net.ParseIP(h); ip == nil || !(ip.IsUnspecified() || ip.IsLoopback()) {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// ServeRedirect serves plain HTTP on l until Shutdown, answering every
// request with a redirect to the same URL over HTTPS on the port that Serve
// listens on. It returns nil after a shutdown.
func (a *App) ServeRedirect(l net.Listener) error {
	if a.tls == nil {
		return errors.New("app: an HTTP to HTTPS redirect needs TLS")
	}
	a.log.Info("redirecting HTTP to HTTPS", "addr", l.Addr().String())
	if err := a.redirect.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// redirectToHTTPS sends the client to the same host and path over HTTPS.
// 307 keeps the method and is not cached, so switching TLS off later does
// not strand browsers.
func (a *App) redirectToHTTPS(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	if h, _, err := net.SplitHostPort(r.Host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "" {
		http.Error(w, "this port redirects to HTTPS: send a Host header", http.StatusBadRequest)
		return
	}
	port, _ := a.httpsPort.Load().(string)
	if port == "" {
		_, port, _ = net.SplitHostPort(a.cfg.Addr)
	}
	target := "https://" + host
	if port != "" && port != "443" {
		target = "https://" + net.JoinHostPort(host, port)
	}
	http.Redirect(w, r, target+r.URL.RequestURI(), http.StatusTemporaryRedirect)
}

func (a *App) shutdownRedirect(ctx context.Context) error {
	if a.redirect == nil {
		return nil
	}
	return a.redirect.Shutdown(ctx)
}
