package sfu

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// The direct path's own AEAD GCM sealer (srtpseal.go) makes, packet for
// packet, the bytes pion's srtp.Context makes for the same keys: both key
// sizes, with and without header encryption (RFC 9335), packets with and
// without header extensions (one- and two-byte) and CSRCs (which the
// sealer leaves to pion under cryptex), random payload sizes, three SSRCs
// interleaved, retransmissions of older packets, and sequence numbers that
// start near 65535 and wrap (the rollover counter goes from 0 to 1).
func TestGCMSealerMatchesPion(t *testing.T) {
	for _, profile := range []srtp.ProtectionProfile{srtp.ProtectionProfileAeadAes128Gcm, srtp.ProtectionProfileAeadAes256Gcm} {
		for _, cryptex := range []bool{false, true} {
			for _, start := range []uint16{65535, 65000, 0, 40000} {
				t.Run(fmt.Sprintf("profile%d/cryptex=%v/start%d", profile, cryptex, start), func(t *testing.T) {
					checkSealerMatchesPion(t, profile, cryptex, start)
				})
			}
		}
	}
}

func checkSealerMatchesPion(t *testing.T, profile srtp.ProtectionProfile, cryptex bool, start uint16) {
	rng := rand.New(rand.NewPCG(uint64(profile), uint64(start)))
	keyLen, _ := profile.KeyLen()
	saltLen, _ := profile.SaltLen()
	key, salt := make([]byte, keyLen), make([]byte, saltLen)
	for i := range key {
		key[i] = byte(rng.Uint32())
	}
	for i := range salt {
		salt[i] = byte(rng.Uint32())
	}
	var opts []srtp.ContextOption
	if cryptex {
		opts = append(opts, srtp.Cryptex(srtp.CryptexModeEnabled))
	}
	newCtx := func() *srtp.Context {
		c, err := srtp.CreateContext(key, salt, profile, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	own := &directPath{ctx: newCtx(), tag: 16}
	if ok, err := own.seal.init(profile, key, salt, cryptex); !ok || err != nil {
		t.Fatalf("sealer: %v %v", ok, err)
	}
	own.sealed = true
	pion := newCtx()

	ssrcs := [3]uint32{0x11223344, 0xdeadbeef, 7} // more than the sealer keeps inline
	first := [3]uint16{start, start - 500, start + 2000}
	seqs := first
	var sent [3][]uint16
	for i := range 6000 {
		k := i % 3
		h := randomHeader(rng, ssrcs[k], cryptex)
		switch {
		case i > 300 && rng.IntN(20) == 0: // a retransmission
			h.SequenceNumber = sent[k][len(sent[k])-1-rng.IntN(100)]
		default:
			if rng.IntN(50) == 0 {
				seqs[k] += uint16(rng.IntN(30)) // a gap: some were not forwarded
			}
			h.SequenceNumber = seqs[k]
			seqs[k]++
			sent[k] = append(sent[k], h.SequenceNumber)
		}
		payload := make([]byte, rng.IntN(1200))
		for j := range payload {
			payload[j] = byte(rng.Uint32())
		}
		raw, err := (&rtp.Packet{Header: h, Payload: payload}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		want, err := pion.EncryptRTP(nil, raw, nil)
		if err != nil {
			t.Fatal(err)
		}
		own.h, own.payload = &h, payload
		buf := make([]byte, len(raw)+own.tag)
		n, err := own.Fill(buf)
		if err != nil {
			t.Fatalf("packet %d (seq %d): %v", i, h.SequenceNumber, err)
		}
		if !bytes.Equal(buf[:n], want) {
			t.Fatalf("packet %d (ssrc %x seq %d, %d bytes, extension %v, %d CSRCs) differs from pion's:\n%x\n%x",
				i, h.SSRC, h.SequenceNumber, len(raw), h.Extension, len(h.CSRC), buf[:n], want)
		}
	}
	for k, ssrc := range ssrcs {
		wrapped := seqs[k] < first[k]
		roc, ok := own.roc(ssrc)
		if want, _ := pion.ROC(ssrc); !ok || roc != want || (roc == 1) != wrapped {
			t.Fatalf("ssrc %x: rollover counter %d (%v), pion's %d, wrapped %v", ssrc, roc, ok, want, wrapped)
		}
	}
}

// randomHeader makes a header like those the SFU forwards: with or
// without header extensions, now and then with CSRCs (with an extension
// under cryptex, as pion cannot encrypt a packet with CSRCs but without
// extension in place).
func randomHeader(rng *rand.Rand, ssrc uint32, cryptex bool) rtp.Header {
	h := rtp.Header{Version: 2, PayloadType: 96, Timestamp: rng.Uint32(), SSRC: ssrc, Marker: rng.IntN(2) == 0}
	ext := rng.IntN(3)
	if rng.IntN(10) == 0 {
		h.CSRC = []uint32{rng.Uint32(), rng.Uint32()}[:1+rng.IntN(2)]
		if cryptex && ext == 0 {
			ext = 1
		}
	}
	for id := range 1 + rng.IntN(3) {
		val := make([]byte, 1+rng.IntN(8))
		switch ext {
		case 1:
			_ = h.SetExtensionWithProfile(uint8(id+1), val, rtp.ExtensionProfileOneByte)
		case 2:
			_ = h.SetExtensionWithProfile(uint8(id+1), val, rtp.ExtensionProfileTwoByte)
		}
	}
	return h
}

// BenchmarkSeal compares encrypting one 1,200-byte packet in place with
// the sealer and with pion's context, the same keys, two SSRCs
// alternated (a viewer's audio and video).
//
//	go test -run '^$' -bench Seal -benchmem ./internal/sfu
func BenchmarkSeal(b *testing.B) {
	key, salt := make([]byte, 16), make([]byte, 12)
	profile := srtp.ProtectionProfileAeadAes128Gcm
	ctx, err := srtp.CreateContext(key, salt, profile)
	if err != nil {
		b.Fatal(err)
	}
	own := &directPath{ctx: ctx, tag: 16, sealed: true}
	if _, err := own.seal.init(profile, key, salt, false); err != nil {
		b.Fatal(err)
	}
	h := rtp.Header{Version: 2, PayloadType: 96}
	_ = h.SetExtensionWithProfile(1, []byte{1, 2, 3}, rtp.ExtensionProfileOneByte)
	payload := make([]byte, 1200)
	buf := make([]byte, h.MarshalSize()+len(payload)+16)
	for _, path := range []struct {
		name string
		o    *directPath
	}{{"own", own}, {"pion", &directPath{ctx: ctx, tag: 16}}} {
		b.Run(path.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			for i := 0; b.Loop(); i++ {
				h.SSRC = uint32(i & 1)
				h.SequenceNumber = uint16(i >> 1)
				path.o.h, path.o.payload = &h, payload
				if _, err := path.o.Fill(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
