package sfu

import (
	"bytes"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"

	"github.com/onair-live/onair/internal/sfu/udpbatch"
)

// Under header encryption (RFC 9335 5.1) a packet with CSRCs but no header
// extension is sent with an empty extension block added, 4 bytes more than
// the packet: the direct path leaves room for it, so that such a packet
// (a mixer's, forwarded as it came) reaches a cryptex viewer and decrypts
// to the presenter's CSRCs and payload, with both the SFU's sealer (GCM)
// and pion's context (AES-CM).
func TestDirectPathCryptexCSRCWithoutExtension(t *testing.T) {
	for _, profile := range []srtp.ProtectionProfile{srtp.ProtectionProfileAeadAes128Gcm, srtp.ProtectionProfileAes128CmHmacSha1_80} {
		keyLen, _ := profile.KeyLen()
		saltLen, _ := profile.SaltLen()
		key, salt := bytes.Repeat([]byte{7}, keyLen), bytes.Repeat([]byte{9}, saltLen)
		opt := srtp.Cryptex(srtp.CryptexModeEnabled)
		ctx, err := srtp.CreateContext(key, salt, profile, opt)
		if err != nil {
			t.Fatal(err)
		}
		recv, err := srtp.CreateContext(key, salt, profile, opt)
		if err != nil {
			t.Fatal(err)
		}
		aead, _ := profile.AEADAuthTagLen()
		auth, _ := profile.AuthTagRTPLen()
		o := &directPath{ctx: ctx, tag: aead + auth, cryptex: true, state: directOn}
		if o.sealed, err = o.seal.init(profile, key, salt, true); err != nil {
			t.Fatal(err)
		}
		from, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		to, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		conn := udpbatch.Wrap(from, udpbatch.NewBuffers())
		o.route = directRoute{conn: conn, to: to.LocalAddr().(*net.UDPAddr).AddrPort()}

		h := rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: 1000, Timestamp: 5, SSRC: 42,
			CSRC: []uint32{0xcafe, 0xbeef}}
		payload := []byte("a mixer's packet")
		if direct, err := o.send(&h, payload); !direct || err != nil {
			t.Fatalf("profile %d: a packet with CSRCs and no extension not sent directly: %v %v", profile, direct, err)
		}
		buf := make([]byte, 1500)
		_ = to.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := to.ReadFromUDP(buf)
		if err != nil {
			t.Fatal(err)
		}
		var got rtp.Header
		plain, err := recv.DecryptRTP(nil, buf[:n], &got)
		if err != nil {
			t.Fatalf("profile %d: %v", profile, err)
		}
		if !slices.Equal(got.CSRC, h.CSRC) || !bytes.HasSuffix(plain, payload) {
			t.Fatalf("profile %d: got CSRCs %x, packet %x", profile, got.CSRC, plain)
		}
		_ = conn.Close()
		_ = to.Close()
	}
}
