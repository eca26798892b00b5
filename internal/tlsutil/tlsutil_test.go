package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSelfSignedServesTLSForItsHosts(t *testing.T) {
	now := time.Now()
	cert, err := SelfSigned([]string{"localhost", "127.0.0.1", "::1"}, now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got := Names(cert.Leaf); !slices.Equal(got, []string{"localhost", "127.0.0.1", "::1"}) {
		t.Errorf("names = %v", got)
	}
	if !cert.Leaf.NotBefore.Before(now) || !cert.Leaf.NotAfter.After(now.Add(23*time.Hour)) {
		t.Errorf("validity %v..%v does not cover now and the next day", cert.Leaf.NotBefore, cert.Leaf.NotAfter)
	}
	if cert.Leaf.IsCA {
		t.Error("a demo certificate must not be a CA")
	}

	l, err := tls.Listen("tcp", "127.0.0.1:0", ServerConfig(cert))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = c.Write([]byte("hello"))
	}()

	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	for _, name := range []string{"localhost", "127.0.0.1"} {
		if err := cert.Leaf.VerifyHostname(name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatalf("handshake with the self-signed certificate trusted: %v", err)
	}
	b, _ := io.ReadAll(c)
	c.Close()
	<-done
	if string(b) != "hello" {
		t.Errorf("read %q over TLS", b)
	}
	if err := cert.Leaf.VerifyHostname("example.com"); err == nil {
		t.Error("certificate claims a host it was not made for")
	}
}

func TestSelfSignedNeedsAHost(t *testing.T) {
	if _, err := SelfSigned(nil, time.Now(), time.Hour); err == nil {
		t.Fatal("no error for a certificate with no host")
	}
}

func writePEM(t *testing.T, cert tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestLoadKeyPair(t *testing.T) {
	a, err := SelfSigned([]string{"a.test"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b, err := SelfSigned([]string{"b.test"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	aCert, aKey := writePEM(t, a)
	_, bKey := writePEM(t, b)

	got, err := LoadKeyPair(aCert, aKey)
	if err != nil {
		t.Fatalf("loading a good pair: %v", err)
	}
	if got.Leaf == nil || !slices.Equal(Names(got.Leaf), []string{"a.test"}) {
		t.Errorf("loaded leaf names %v", Names(got.Leaf))
	}

	for _, tc := range []struct {
		name, cert, key, want string
	}{
		{"missing cert", filepath.Join(t.TempDir(), "nope.pem"), aKey, "cannot read certificate file"},
		{"missing key", aCert, filepath.Join(t.TempDir(), "nope.pem"), "cannot read key file"},
		{"swapped", aKey, aCert, "holds no PEM CERTIFICATE block"},
		{"mismatched", aCert, bKey, "do not form a pair"},
		{"empty", "", "", "both a certificate file and a key file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadKeyPair(tc.cert, tc.key)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	cert, err := SelfSigned([]string{"localhost"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	fp := Fingerprint(cert.Leaf)
	if !regexp.MustCompile(`^([0-9A-F]{2}:){31}[0-9A-F]{2}$`).MatchString(fp) {
		t.Errorf("fingerprint %q is not 32 colon-separated hex bytes", fp)
	}
}

func TestServerConfigOffersHTTP11(t *testing.T) {
	cfg := ServerConfig(tls.Certificate{})
	if !slices.Contains(cfg.NextProtos, "http/1.1") {
		t.Errorf("NextProtos %v: WebSockets need http/1.1", cfg.NextProtos)
	}
	if cfg.MinVersion < tls.VersionTLS12 {
		t.Error("TLS below 1.2 allowed")
	}
}
