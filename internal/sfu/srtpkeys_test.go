package sfu

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/selfsign"
	"github.com/pion/srtp/v3"
)

// The keys dtlsSecrets derives from what pion's hooks show of a DTLS
// handshake are those pion's own exporter gives the client: for each PRF
// hash, with and without the extended master secret, for each SRTP profile.
func TestDTLSSecretsMatchTheExporter(t *testing.T) {
	cert, err := selfsign.GenerateSelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		suite   dtls.CipherSuiteID
		ems     dtls.ExtendedMasterSecretType
		profile dtls.SRTPProtectionProfile
	}{
		{dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, dtls.RequireExtendedMasterSecret, dtls.SRTP_AEAD_AES_128_GCM},
		{dtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, dtls.RequireExtendedMasterSecret, dtls.SRTP_AEAD_AES_256_GCM},
		{dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, dtls.DisableExtendedMasterSecret, dtls.SRTP_AES128_CM_HMAC_SHA1_80},
	} {
		t.Run(dtls.CipherSuiteName(c.suite), func(t *testing.T) {
			var k dtlsSecrets
			base := dtls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true,
				CipherSuites: []dtls.CipherSuiteID{c.suite}, ExtendedMasterSecret: c.ems,
				SRTPProtectionProfiles: []dtls.SRTPProtectionProfile{c.profile}}
			server := base
			server.KeyLogWriter = &k
			server.ServerHelloMessageHook = k.serverHello
			client := dtlsHandshake(t, &base, &server)
			want, err := client.ExportKeyingMaterial("EXTRACTOR-dtls_srtp", nil, 60)
			if err != nil {
				t.Fatal(err)
			}
			got, err := k.ExportKeyingMaterial("EXTRACTOR-dtls_srtp", nil, 60)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("exported %x (%v), want %x", got, err, want)
			}
			if _, _, _, err := k.context(false, &gcmSealer{}); err != nil || k.profile != srtp.ProtectionProfile(c.profile) {
				t.Fatalf("context: %v, profile %v", err, k.profile)
			}
			if _, err := k.ExportKeyingMaterial("EXTRACTOR-dtls_srtp", nil, 60); err == nil {
				t.Fatal("the master secret is kept after the keys are derived")
			}
		})
	}
}

// dtlsHandshake runs a DTLS handshake over loopback UDP and returns the
// client's state.
func dtlsHandshake(t *testing.T, clientCfg, serverCfg *dtls.Config) dtls.State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lo := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	cs, err := net.ListenUDP("udp4", lo)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := net.ListenUDP("udp4", lo)
	if err != nil {
		t.Fatal(err)
	}
	server, err := dtls.Server(ss, cs.LocalAddr(), serverCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	client, err := dtls.Client(cs, ss.LocalAddr(), clientCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	done := make(chan error, 1)
	go func() { done <- server.HandshakeContext(ctx) }()
	if err := client.HandshakeContext(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st, ok := client.ConnectionState()
	if !ok {
		t.Fatal("no client state")
	}
	return st
}
