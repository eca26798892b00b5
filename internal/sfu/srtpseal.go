package sfu

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// gcmSealer encrypts the direct path's RTP for the AEAD_AES_128_GCM and
// AEAD_AES_256_GCM profiles (RFC 7714) itself, with the standard library's
// AES-GCM, in place in the batch, where pion's srtp.Context would look its
// per-SSRC state up in a map and rebuild the IV for every packet: that
// bookkeeping cost about as much as the seal. One per viewer, in its
// directPath, used by its writer alone (under directPath.mu); it makes the same bytes as pion's
// context for the same keys (srtpseal_test.go).
//
// The packets it cannot seal in place (with header encryption, RFC 9335:
// those with CSRCs, whose encrypted part is not contiguous, or an extension
// profile cryptex does not cover) are left to pion's context, given the
// rollover counter first (directPath.Fill).
type gcmSealer struct {
	aead    cipher.AEAD // nil: the viewer's profile is not an AEAD GCM one
	salt    [12]byte    // the session salt
	cryptex bool        // header extensions are encrypted too (RFC 9335)
	nonce   [12]byte    // the IV, rebuilt for each packet
	// The SSRCs' states: a viewer has two (audio and video), kept in
	// the struct, which lives in the viewer's directPath, so that a
	// packet touches no other memory than the path's and the AEAD's.
	streams [2]sealStream
	n       int
	more    []sealStream
}

// sealStream is one SSRC's sending state: its highest packet index
// (rollover counter and sequence number, RFC 3711 3.3.1) and its part of
// the IV (RFC 7714 8.1: the salt XOR 0x0000 || SSRC || 0 || 0).
type sealStream struct {
	ssrc    uint32
	started bool
	index   uint64 // ROC << 16 | SEQ of the newest packet sent
	iv      [12]byte
}

// The RFC 3711 key derivation labels for SRTP (4.3.1).
const (
	labelRTPKey  = 0x00
	labelRTPSalt = 0x02
)

var errROCExhausted = errors.New("sfu: SRTP rollover counter exhausted: the keys must be renewed")

// init sets the sealer up with a viewer's master key and salt if its
// profile is one of the AEAD GCM ones, and tells whether it is.
func (s *gcmSealer) init(profile srtp.ProtectionProfile, masterKey, masterSalt []byte, cryptex bool) (bool, error) {
	switch profile {
	case srtp.ProtectionProfileAeadAes128Gcm, srtp.ProtectionProfileAeadAes256Gcm:
	default:
		return false, nil
	}
	key, err := deriveSessionKey(labelRTPKey, masterKey, masterSalt, len(masterKey))
	if err != nil {
		return false, err
	}
	salt, err := deriveSessionKey(labelRTPSalt, masterKey, masterSalt, 12)
	if err != nil {
		return false, err
	}
	block, err := aes.NewCipher(key)
	clear(key)
	if err != nil {
		return false, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return false, err
	}
	*s = gcmSealer{aead: aead, cryptex: cryptex}
	copy(s.salt[:], salt)
	return true, nil
}

// deriveSessionKey is RFC 3711 4.3's AES-CM key derivation with a key
// derivation rate of 0, as WebRTC uses it: the master key encrypts the
// master salt XOR the label (at byte 7, the 48-bit index being 0), a
// 16-bit block counter in the last two bytes. For GCM the master salt is
// 12 bytes (RFC 7714 11), placed at the start of the block.
func deriveSessionKey(label byte, masterKey, masterSalt []byte, n int) ([]byte, error) {
	if len(masterSalt) > 14 {
		return nil, errors.New("sfu: SRTP master salt too long")
	}
	block, err := aes.NewCipher(masterKey)
	if err != nil {
		return nil, err
	}
	var in [aes.BlockSize]byte
	copy(in[:], masterSalt)
	in[7] ^= label
	out := make([]byte, (n+aes.BlockSize-1)/aes.BlockSize*aes.BlockSize)
	for i := 0; i*aes.BlockSize < n; i++ {
		binary.BigEndian.PutUint16(in[14:], uint16(i))
		block.Encrypt(out[i*aes.BlockSize:], in[:])
	}
	return out[:n], nil
}

// find is the sending state of ssrc, nil before its first packet.
func (s *gcmSealer) find(ssrc uint32) *sealStream {
	for i := range s.n {
		if s.streams[i].ssrc == ssrc {
			return &s.streams[i]
		}
	}
	for i := range s.more {
		if s.more[i].ssrc == ssrc {
			return &s.more[i]
		}
	}
	return nil
}

// stream is the sending state of ssrc.
func (s *gcmSealer) stream(ssrc uint32) *sealStream {
	if st := s.find(ssrc); st != nil {
		return st
	}
	st := sealStream{ssrc: ssrc, iv: s.salt}
	binary.BigEndian.PutUint32(st.iv[2:], binary.BigEndian.Uint32(st.iv[2:])^ssrc)
	if s.n < len(s.streams) {
		s.streams[s.n] = st
		s.n++
		return &s.streams[s.n-1]
	}
	s.more = append(s.more, st)
	return &s.more[len(s.more)-1]
}

// roc tells the rollover counter of the ssrc's packets sent so far, false
// for one not sent yet.
func (s *gcmSealer) roc(ssrc uint32) (uint32, bool) {
	if st := s.find(ssrc); st != nil {
		return uint32(st.index >> 16), true
	}
	return 0, false
}

// next gives the rollover counter of a packet with sequence number seq and
// moves the stream's index forward if it is the newest. A sender's packets
// are in order but for retransmissions, which may be from before a wrap:
// the index is estimated as RFC 3711 3.3.1 (and its Appendix A) does,
// as pion's context does.
func (st *sealStream) next(seq uint16) (uint32, error) {
	const median, span = 1 << 15, 1 << 16
	if !st.started {
		st.started, st.index = true, uint64(seq)
		return 0, nil
	}
	localROC := uint32(st.index >> 16)
	localSeq := int32(st.index & (span - 1))
	q := int32(seq)
	roc, diff := localROC, q-localSeq
	if st.index > median {
		switch {
		case localSeq < median && diff > median:
			roc, diff = localROC-1, diff-span // from before the wrap
		case localSeq >= median && localSeq-median > q:
			roc, diff = localROC+1, diff+span // past the wrap
		}
	}
	if roc == 0 && localROC == ^uint32(0) {
		return 0, errROCExhausted
	}
	if diff > 0 {
		st.index += uint64(diff)
	}
	return roc, nil
}

// sealable tells whether seal can encrypt h's packet in place: always
// without header encryption; with it, when the encrypted part (extension
// data and payload) follows the authenticated one (fixed header and the
// extension's first word), that is without CSRCs, and the extension is
// one cryptex covers.
func (s *gcmSealer) sealable(h *rtp.Header) bool {
	if !s.cryptex {
		return true
	}
	if len(h.CSRC) > 0 {
		return false
	}
	return !h.Extension || h.ExtensionProfile == rtp.ExtensionProfileOneByte ||
		h.ExtensionProfile == rtp.ExtensionProfileTwoByte
}

// seal encrypts the packet buf[:n] of st, whose header is its first hl
// bytes, in place, and appends the tag; buf has room for it (seal panics
// otherwise). It returns the SRTP packet's length.
func (s *gcmSealer) seal(st *sealStream, roc uint32, h *rtp.Header, buf []byte, hl, n int) int {
	s.nonce = st.iv
	binary.BigEndian.PutUint32(s.nonce[6:], binary.BigEndian.Uint32(s.nonce[6:])^roc)
	binary.BigEndian.PutUint16(s.nonce[10:], binary.BigEndian.Uint16(s.nonce[10:])^h.SequenceNumber)
	if s.cryptex && h.Extension {
		// RFC 9335 6.2: the extension's data is encrypted, its profile
		// tells so; the fixed header and the extension's first word stay
		// authenticated only.
		profile := uint16(rtp.CryptexProfileOneByte)
		if h.ExtensionProfile == rtp.ExtensionProfileTwoByte {
			profile = rtp.CryptexProfileTwoByte
		}
		binary.BigEndian.PutUint16(buf[12:], profile)
		hl = 16
	}
	out := s.aead.Seal(buf[hl:hl], s.nonce[:], buf[hl:n], buf[:hl])
	return hl + len(out)
}
