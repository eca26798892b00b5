package record

import (
	"encoding/binary"
	"errors"
	"strings"

	"github.com/onair-live/onair/internal/codec"
)

// What the container needs of each codec: its Matroska codec id, and, read
// from the first keyframe, the picture size and the decoder configuration
// (CodecPrivate).

// matroskaCodec maps a codec to its Matroska codec id; ok is false for a
// codec the recorder cannot store.
func matroskaCodec(mime string) (id string, ok bool) {
	switch {
	case strings.EqualFold(mime, codec.VP8):
		return "V_VP8", true
	case strings.EqualFold(mime, codec.VP9):
		return "V_VP9", true
	case strings.EqualFold(mime, codec.AV1):
		return "V_AV1", true
	case strings.EqualFold(mime, codec.H264):
		return "V_MPEG4/ISO/AVC", true
	case strings.EqualFold(mime, codec.Opus):
		return "A_OPUS", true
	}
	return "", false
}

// opusHead is the Opus identification header (RFC 7845 section 5.1), the
// CodecPrivate of A_OPUS. The stream is joined mid-way, so pre-skip is 0.
func opusHead(channels int) []byte {
	if channels <= 0 {
		channels = 2
	}
	b := []byte("OpusHead")
	b = append(b, 1, byte(channels))
	b = binary.LittleEndian.AppendUint16(b, 0)     // pre-skip
	b = binary.LittleEndian.AppendUint32(b, 48000) // input sample rate
	b = binary.LittleEndian.AppendUint16(b, 0)     // output gain
	return append(b, 0)                            // channel mapping family 0
}

var errNoConfig = errors.New("record: keyframe without the decoder configuration")

// videoConfig reads a keyframe's picture size and the track's CodecPrivate.
// For H.264 the SPS and PPS may come from earlier frames (sps, pps).
func videoConfig(mime string, key []byte, sps, pps []byte) (width, height int, private []byte, err error) {
	switch {
	case strings.EqualFold(mime, codec.VP8):
		// Frame tag (3 bytes), start code 9d 01 2a, then 14-bit sizes.
		if len(key) < 10 || key[3] != 0x9d || key[4] != 0x01 || key[5] != 0x2a {
			return 0, 0, nil, errNoConfig
		}
		w := int(binary.LittleEndian.Uint16(key[6:])) & 0x3fff
		h := int(binary.LittleEndian.Uint16(key[8:])) & 0x3fff
		return w, h, nil, nil
	case strings.EqualFold(mime, codec.VP9):
		w, h, ok := vp9Size(key)
		if !ok {
			return 0, 0, nil, errNoConfig
		}
		return w, h, nil, nil
	case strings.EqualFold(mime, codec.H264):
		if sps == nil || pps == nil {
			return 0, 0, nil, errNoConfig
		}
		w, h, ok := h264Size(sps)
		if !ok || len(sps) < 4 {
			return 0, 0, nil, errNoConfig
		}
		return w, h, avcC(sps, pps), nil
	case strings.EqualFold(mime, codec.AV1):
		seq := av1SequenceHeader(key)
		if seq == nil {
			return 0, 0, nil, errNoConfig
		}
		c, ok := parseAV1Sequence(seq)
		if !ok {
			return 0, 0, nil, errNoConfig
		}
		return c.width, c.height, av1C(c, seq), nil
	}
	return 0, 0, nil, errNoConfig
}

// avcC is the AVCDecoderConfigurationRecord (ISO/IEC 14496-15) with one SPS
// and one PPS and 4-byte NAL lengths.
func avcC(sps, pps []byte) []byte {
	b := []byte{1, sps[1], sps[2], sps[3], 0xff, 0xe1}
	b = binary.BigEndian.AppendUint16(b, uint16(len(sps)))
	b = append(b, sps...)
	b = append(b, 1)
	b = binary.BigEndian.AppendUint16(b, uint16(len(pps)))
	return append(b, pps...)
}

// bitReader reads big-endian bits, and Exp-Golomb codes for H.264.
type bitReader struct {
	b   []byte
	pos int // in bits
	bad bool
}

func (r *bitReader) u(n int) uint32 {
	var v uint32
	for i := 0; i < n; i++ {
		if r.pos >= 8*len(r.b) {
			r.bad = true
			return 0
		}
		v = v<<1 | uint32(r.b[r.pos/8]>>(7-r.pos%8))&1
		r.pos++
	}
	return v
}

func (r *bitReader) flag() bool { return r.u(1) == 1 }

func (r *bitReader) ue() uint32 {
	zeros := 0
	for !r.bad && r.u(1) == 0 {
		zeros++
		if zeros > 31 {
			r.bad = true
			return 0
		}
	}
	return (1<<zeros - 1) + r.u(zeros)
}

func (r *bitReader) se() int32 {
	v := r.ue()
	if v%2 == 1 {
		return int32((v + 1) / 2)
	}
	return -int32(v / 2)
}

// unescapeRBSP removes H.264 emulation prevention bytes (00 00 03).
func unescapeRBSP(b []byte) []byte {
	out := make([]byte, 0, len(b))
	zeros := 0
	for _, c := range b {
		if zeros >= 2 && c == 3 {
			zeros = 0
			continue
		}
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
		out = append(out, c)
	}
	return out
}

// h264Size reads the picture size from a sequence parameter set (ITU-T
// H.264 section 7.3.2.1.1), cropping included.
func h264Size(sps []byte) (width, height int, ok bool) {
	if len(sps) < 4 {
		return 0, 0, false
	}
	r := &bitReader{b: unescapeRBSP(sps[1:])}
	profile := r.u(8)
	r.u(16) // constraint flags, level
	r.ue()  // seq_parameter_set_id
	chroma := uint32(1)
	switch profile {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		chroma = h264HighProfile(r)
	}
	r.ue()          // log2_max_frame_num_minus4
	switch r.ue() { // pic_order_cnt_type
	case 0:
		r.ue() // log2_max_pic_order_cnt_lsb_minus4
	case 1:
		r.u(1) // delta_pic_order_always_zero_flag
		r.se() // offset_for_non_ref_pic
		r.se() // offset_for_top_to_bottom_field
		n := r.ue()
		for i := uint32(0); i < n && !r.bad; i++ {
			r.se()
		}
	}
	r.ue() // max_num_ref_frames
	r.u(1) // gaps_in_frame_num_value_allowed_flag
	wMBs := int(r.ue()) + 1
	hMaps := int(r.ue()) + 1
	frameMBsOnly := int(r.u(1))
	if frameMBsOnly == 0 {
		r.u(1) // mb_adaptive_frame_field_flag
	}
	r.u(1) // direct_8x8_inference_flag
	var cl, cr, ct, cb int
	if r.flag() {
		cl, cr, ct, cb = int(r.ue()), int(r.ue()), int(r.ue()), int(r.ue())
	}
	if r.bad {
		return 0, 0, false
	}
	cropX, cropY := 1, 2-frameMBsOnly
	switch chroma {
	case 1:
		cropX, cropY = 2, 2*(2-frameMBsOnly)
	case 2:
		cropX = 2
	}
	width = wMBs*16 - (cl+cr)*cropX
	height = (2-frameMBsOnly)*hMaps*16 - (ct+cb)*cropY
	return width, height, width > 0 && height > 0
}

// h264HighProfile reads the fields an SPS of the high profiles adds after
// seq_parameter_set_id, and returns chroma_format_idc.
func h264HighProfile(r *bitReader) (chroma uint32) {
	chroma = r.ue()
	if chroma == 3 {
		r.u(1) // separate_colour_plane_flag
	}
	r.ue()         // bit_depth_luma_minus8
	r.ue()         // bit_depth_chroma_minus8
	r.u(1)         // qpprime_y_zero_transform_bypass_flag
	if !r.flag() { // seq_scaling_matrix_present_flag
		return chroma
	}
	lists := 8
	if chroma == 3 {
		lists = 12
	}
	for i := 0; i < lists; i++ {
		if !r.flag() {
			continue
		}
		size := 16
		if i >= 6 {
			size = 64
		}
		last, next := int32(8), int32(8)
		for j := 0; j < size; j++ {
			if next != 0 {
				next = (last + r.se() + 256) % 256
			}
			if next != 0 {
				last = next
			}
		}
	}
	return chroma
}

// vp9Size reads the frame size from a VP9 keyframe's uncompressed header
// (VP9 bitstream specification section 6.2).
func vp9Size(b []byte) (width, height int, ok bool) {
	r := &bitReader{b: b}
	if r.u(2) != 2 { // frame_marker
		return 0, 0, false
	}
	lo, hi := r.u(1), r.u(1)
	profile := hi<<1 | lo
	if profile == 3 {
		r.u(1)
	}
	if r.flag() { // show_existing_frame
		return 0, 0, false
	}
	if r.u(1) != 0 { // frame_type: not a keyframe
		return 0, 0, false
	}
	r.u(2) // show_frame, error_resilient_mode
	if r.u(24) != 0x498342 {
		return 0, 0, false
	}
	if profile >= 2 {
		r.u(1) // ten_or_twelve_bit
	}
	if r.u(3) != 7 { // color_space other than sRGB
		r.u(1) // color_range
		if profile == 1 || profile == 3 {
			r.u(3) // subsampling_x, subsampling_y, reserved_zero
		}
	} else if profile == 1 || profile == 3 {
		r.u(1)
	}
	width, height = int(r.u(16))+1, int(r.u(16))+1
	return width, height, !r.bad
}

// av1SequenceHeader returns the sequence header OBU (with its header and
// size field) in a temporal unit of OBUs that carry size fields, or nil.
func av1SequenceHeader(tu []byte) []byte {
	for len(tu) > 0 {
		h := tu[0]
		typ := (h >> 3) & 0x0f
		n := 1
		if h&0x04 != 0 { // extension header
			n++
		}
		if h&0x02 == 0 || len(tu) < n { // no size field: not our format
			return nil
		}
		size, m := leb128(tu[n:])
		if m == 0 || uint64(len(tu)-n-m) < size {
			return nil
		}
		end := n + m + int(size)
		if typ == 1 {
			return tu[:end]
		}
		tu = tu[end:]
	}
	return nil
}

func leb128(b []byte) (v uint64, n int) {
	for i := 0; i < 8 && i < len(b); i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			return v, i + 1
		}
	}
	return 0, 0
}

// av1Sequence is what av1C needs of a sequence header.
type av1Sequence struct {
	profile, level, tier uint32
	width, height        int
}

// parseAV1Sequence reads a sequence header OBU (AV1 specification section
// 5.5) up to the maximum frame size.
func parseAV1Sequence(obu []byte) (av1Sequence, bool) {
	n := 1
	if obu[0]&0x04 != 0 {
		n++
	}
	_, m := leb128(obu[n:])
	r := &bitReader{b: obu[n+m:]}
	var s av1Sequence
	s.profile = r.u(3)
	r.u(1) // still_picture
	reduced := r.flag()
	if reduced {
		s.level = r.u(5)
	} else {
		decoderModel := false
		if r.flag() { // timing_info_present_flag
			r.u(32)       // num_units_in_display_tick
			r.u(32)       // time_scale
			if r.flag() { // equal_picture_interval
				zeros := 0
				for !r.bad && r.u(1) == 0 && zeros < 32 {
					zeros++
				}
				r.u(zeros)
			}
			decoderModel = r.flag()
		}
		delayLen := 0
		if decoderModel {
			delayLen = int(r.u(5)) + 1 // buffer_delay_length_minus_1
			r.u(32)                    // num_units_in_decoding_tick
			r.u(10)                    // buffer_removal_time_length_minus_1, frame_presentation_time_length_minus_1
		}
		initialDelay := r.flag()
		ops := int(r.u(5)) + 1
		for i := 0; i < ops && !r.bad; i++ {
			r.u(12) // operating_point_idc
			level := r.u(5)
			tier := uint32(0)
			if level > 7 {
				tier = r.u(1)
			}
			if i == 0 {
				s.level, s.tier = level, tier
			}
			if decoderModel && r.flag() {
				r.u(2*delayLen + 1)
			}
			if initialDelay && r.flag() {
				r.u(4)
			}
		}
	}
	wBits, hBits := int(r.u(4))+1, int(r.u(4))+1
	s.width, s.height = int(r.u(wBits))+1, int(r.u(hBits))+1
	return s, !r.bad
}

// av1C is the AV1CodecConfigurationRecord (AV1-ISOBMFF section 2.3) with
// the sequence header as its configOBUs. 4:2:0 at 8 or 10 bits, which is
// what WebRTC encoders send, is assumed: decoders read the exact format
// from the sequence header.
func av1C(s av1Sequence, seq []byte) []byte {
	b := []byte{0x81, byte(s.profile<<5 | s.level&0x1f), byte(s.tier<<7) | 0x0c, 0}
	return append(b, seq...)
}
