package live

import (
	"github.com/onair-live/onair/internal/auth"
	"github.com/onair-live/onair/internal/media"
)

// AttachSink attaches sink to the media of the broadcast live in roomID in
// this process, for a tier of viewers that are not WebRTC peers (the HLS
// muxer): who needs the view grant on the room. The sink is one more
// recorder-kind endpoint of the room's pipeline, named name; it is not a
// viewer of the room (the room's count is unchanged). Releasing the
// returned endpoint detaches it; the room's end releases it too, and the
// engine then closes the sink.
func (s *Service) AttachSink(who auth.Principal, roomID, name string, sink media.Sink) (media.Endpoint, error) {
	if err := s.mayView(who, roomID); err != nil {
		return nil, err
	}
	r := s.room(roomID)
	if r == nil {
		return nil, ErrNoRoom.With("room %s is not live here", roomID)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended || r.pipeline == nil {
		return nil, ErrNoRoom.With("room %s is not live here", roomID)
	}
	return r.pipeline.NewRecorder(name, sink)
}
