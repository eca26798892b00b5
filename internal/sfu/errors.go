package sfu

import "errors"

// Errors internal to the engine; what crosses to the domain is in internal/media.
var (
	errBadPadding = errors.New("sfu: invalid RTP padding")
	// errSecondPublisher: a pipeline carries one broadcast.
	errSecondPublisher = errors.New("sfu: pipeline already has a publisher")
	// errRecorderOffer: a recorder endpoint has no peer to negotiate with.
	errRecorderOffer = errors.New("sfu: a recorder endpoint takes no offer")
)
