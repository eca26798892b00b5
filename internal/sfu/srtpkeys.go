package sfu

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/prf"
	dtlsext "github.com/pion/dtls/v3/pkg/protocol/extension"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/srtp/v3"
)

// dtlsSecrets is what the SFU learns of a viewer's DTLS handshake through
// pion's public hooks, enough to derive the SRTP keys pion derives (RFC
// 5764): pion does not export the DTLS connection. The key log gives the
// client random and the master secret, the ServerHello the SFU sends gives
// the server random, the cipher suite (its PRF hash) and the SRTP profile.
// The master secret never leaves it, and is dropped once the SRTP keys
// are derived.
type dtlsSecrets struct {
	mu           sync.Mutex
	clientRandom []byte
	master       []byte
	serverRandom []byte
	suite        dtls.CipherSuiteID
	profile      srtp.ProtectionProfile
}

var keyLogLabel = []byte("CLIENT_RANDOM ")

// Write takes a key log line: "CLIENT_RANDOM <client random> <master secret>",
// both in hex (the NSS key log format pion writes).
func (k *dtlsSecrets) Write(p []byte) (int, error) {
	line, ok := bytes.CutPrefix(bytes.TrimSpace(p), keyLogLabel)
	if !ok {
		return len(p), nil
	}
	cr, ms, ok := strings.Cut(string(line), " ")
	crb, err1 := hex.DecodeString(cr)
	msb, err2 := hex.DecodeString(ms)
	if !ok || err1 != nil || err2 != nil || len(crb) != handshake.RandomLength {
		return len(p), nil
	}
	k.mu.Lock()
	k.clientRandom, k.master = crb, msb
	k.mu.Unlock()
	return len(p), nil
}

// forget drops the master secret once the keys are derived.
func (k *dtlsSecrets) forget() {
	k.mu.Lock()
	clear(k.master)
	k.master = nil
	k.mu.Unlock()
}

// serverHello records the ServerHello the SFU sends, unchanged.
func (k *dtlsSecrets) serverHello(m handshake.MessageServerHello) handshake.Message {
	sr := m.Random.MarshalFixed()
	k.mu.Lock()
	k.serverRandom = sr[:]
	if m.CipherSuiteID != nil {
		k.suite = dtls.CipherSuiteID(*m.CipherSuiteID)
	}
	k.profile = 0
	for _, e := range m.Extensions {
		if u, ok := e.(*dtlsext.UseSRTP); ok && len(u.ProtectionProfiles) == 1 {
			k.profile = srtp.ProtectionProfile(u.ProtectionProfiles[0])
		}
	}
	k.mu.Unlock()
	return &m
}

var errNoSecrets = errors.New("the DTLS handshake was not seen as its server")

// ExportKeyingMaterial is RFC 5705's exporter without a context, as pion's
// DTLS computes it: the TLS 1.2 PRF of the master secret over the label and
// the client and server randoms (srtp.KeyingMaterialExporter).
func (k *dtlsSecrets) ExportKeyingMaterial(label string, context []byte, length int) ([]byte, error) {
	if len(context) != 0 {
		return nil, errors.New("sfu: exporter context unsupported")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.master == nil || k.serverRandom == nil {
		return nil, errNoSecrets
	}
	seed := make([]byte, 0, len(label)+2*handshake.RandomLength)
	seed = append(append(append(seed, label...), k.clientRandom...), k.serverRandom...)
	hash := prf.HashFunc(sha256.New)
	if strings.HasSuffix(dtls.CipherSuiteName(k.suite), "SHA384") {
		hash = sha512.New384
	}
	return prf.PHash(k.master, seed, length, hash)
}

// context makes the SFU's SRTP context for the viewer, the one pion's
// session has, sets seal up too with an AEAD GCM profile (and tells
// whether it did), and tells how many bytes SRTP adds to a packet. With
// cryptex, header extensions are encrypted too (RFC 9335).
func (k *dtlsSecrets) context(cryptex bool, seal *gcmSealer) (*srtp.Context, bool, int, error) {
	k.mu.Lock()
	profile := k.profile
	k.mu.Unlock()
	if profile == 0 {
		return nil, false, 0, errNoSecrets
	}
	cfg := srtp.Config{Profile: profile}
	err := cfg.ExtractSessionKeysFromDTLS(k, false)
	k.forget()
	if err != nil {
		return nil, false, 0, err
	}
	sealed, err := seal.init(profile, cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, cryptex)
	if err != nil {
		return nil, false, 0, err
	}
	var opts []srtp.ContextOption
	if cryptex {
		opts = append(opts, srtp.Cryptex(srtp.CryptexModeEnabled))
	}
	ctx, err := srtp.CreateContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, profile, opts...)
	if err != nil {
		return nil, false, 0, err
	}
	aead, err1 := profile.AEADAuthTagLen()
	auth, err2 := profile.AuthTagRTPLen()
	if err1 != nil || err2 != nil {
		return nil, false, 0, fmt.Errorf("sfu: SRTP profile %d: %w", profile, errors.Join(err1, err2))
	}
	return ctx, sealed, aead + auth, nil
}
