package codec

import "testing"

func TestIsKeyframe(t *testing.T) {
	tests := []struct {
		name    string
		mime    string
		payload []byte
		want    bool
	}{
		// VP8 (RFC 7741): descriptor, then the VP8 payload header whose bit 0
		// is P, the inverse keyframe flag.
		{"vp8 key", VP8, []byte{0x10, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a}, true},
		{"vp8 mime in lower case", "video/vp8", []byte{0x10, 0x00}, true},
		{"vp8 inter frame", VP8, []byte{0x10, 0x11, 0x02, 0x00}, false},
		{"vp8 continuation packet", VP8, []byte{0x00, 0x00}, false},
		{"vp8 start of partition 1", VP8, []byte{0x11, 0x00}, false},
		{"vp8 7-bit picture id", VP8, []byte{0x90, 0x80, 0x05, 0x00}, true},
		{"vp8 15-bit picture id", VP8, []byte{0x90, 0x80, 0x81, 0x23, 0x00}, true},
		{"vp8 15-bit picture id, inter", VP8, []byte{0x90, 0x80, 0x81, 0x23, 0x01}, false},
		{"vp8 picture id, TL0PICIDX, TID", VP8, []byte{0x90, 0xe0, 0x12, 0x34, 0x40, 0x00}, true},
		{"vp8 KEYIDX only", VP8, []byte{0x90, 0x10, 0x40, 0x00}, true},
		{"vp8 TL0PICIDX, inter", VP8, []byte{0x90, 0x40, 0x01, 0x01}, false},
		{"vp8 descriptor only", VP8, []byte{0x10}, false},
		{"vp8 truncated extension", VP8, []byte{0x90}, false},
		{"vp8 truncated picture id", VP8, []byte{0x90, 0x80}, false},
		{"vp8 truncated after picture id", VP8, []byte{0x90, 0x80, 0x81, 0x23}, false},
		{"vp8 empty", VP8, nil, false},

		// H.264 (RFC 6184).
		{"h264 IDR", H264, []byte{0x65, 0x88, 0x84}, true},
		{"h264 SPS", H264, []byte{0x67, 0x42, 0x00, 0x1f}, true},
		{"h264 PPS", H264, []byte{0x68, 0xce, 0x38}, false},
		{"h264 non-IDR slice", H264, []byte{0x41, 0x9a}, false},
		{"h264 STAP-A with SPS", H264, []byte{0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce}, true},
		{"h264 STAP-A with IDR second", H264, []byte{0x78, 0x00, 0x02, 0x68, 0xce, 0x00, 0x02, 0x65, 0x88}, true},
		{"h264 STAP-A of one-byte NALs", H264, []byte{0x78, 0x00, 0x01, 0x41, 0x00, 0x01, 0x65}, true},
		{"h264 STAP-A without a keyframe NAL", H264, []byte{0x78, 0x00, 0x02, 0x41, 0x9a, 0x00, 0x02, 0x01, 0x02}, false},
		{"h264 STAP-A size past the end", H264, []byte{0x78, 0x00, 0x09, 0x41, 0x65}, false},
		{"h264 STAP-A zero size", H264, []byte{0x78, 0x00, 0x00, 0x65}, false},
		{"h264 FU-A start of IDR", H264, []byte{0x7c, 0x85, 0xb8, 0x00}, true},
		{"h264 FU-A middle of IDR", H264, []byte{0x7c, 0x05, 0xb8}, false},
		{"h264 FU-A end of IDR", H264, []byte{0x7c, 0x45, 0xb8}, false},
		{"h264 FU-A start of non-IDR", H264, []byte{0x7c, 0x81, 0x9a}, false},
		{"h264 FU-A truncated", H264, []byte{0x7c}, false},
		{"h264 empty", H264, nil, false},

		// VP9 (RFC 9628): I|P|L|F|B|E|V|Z, then the picture id, then the
		// layer indices TID:3|U|SID:3|D when L is set.
		{"vp9 key, no layers", VP9, []byte{0x08, 0x00}, true},
		{"vp9 key with picture id", VP9, []byte{0x88, 0x12, 0x00}, true},
		{"vp9 inter-picture predicted", VP9, []byte{0x48, 0x00}, false},
		{"vp9 not the start of a frame", VP9, []byte{0x04, 0x00}, false},
		{"vp9 base spatial layer", VP9, []byte{0xa8, 0x12, 0x00, 0x00}, true},
		{"vp9 base spatial layer, 15-bit picture id", VP9, []byte{0xa8, 0x81, 0x23, 0x00, 0x00}, true},
		{"vp9 spatial layer 1", VP9, []byte{0xa8, 0x12, 0x02, 0x00}, false},
		{"vp9 layers without picture id", VP9, []byte{0x28, 0x00}, true},
		{"vp9 truncated picture id", VP9, []byte{0xa8}, false},
		{"vp9 truncated layer indices", VP9, []byte{0xa8, 0x12}, false},
		{"vp9 empty", VP9, nil, false},

		// AV1: aggregation header Z|Y|W W|N|-|-|-.
		{"av1 new coded video sequence", AV1, []byte{0x18, 0x0a, 0x0b}, true},
		{"av1 N without W", AV1, []byte{0x08, 0x0a}, true},
		{"av1 continuation with N", AV1, []byte{0x88, 0x0a}, false},
		{"av1 inter", AV1, []byte{0x10, 0x32}, false},
		{"av1 empty", AV1, nil, false},

		{"opus is never a keyframe", Opus, []byte{0x10, 0x00}, false},
		{"unknown codec", "video/H265", []byte{0x26, 0x01}, false},
	}
	for _, tt := range tests {
		if got := IsKeyframe(tt.mime, tt.payload); got != tt.want {
			t.Errorf("%s: IsKeyframe(%s, % x) = %v, want %v", tt.name, tt.mime, tt.payload, got, tt.want)
		}
	}
}
