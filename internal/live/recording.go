package live

import "github.com/onair-live/onair/internal/media"

// RecordingStart is what a recorder is told of the broadcast it records.
type RecordingStart struct {
	RoomID     string
	Title      string
	ProfileURL string
	Presenter  string
	// SessionID is the presenter's signalling session (WebSocket or WHIP).
	SessionID string
}

// RecordingSink is one broadcast's recording: the media engine writes the
// broadcast to it and closes it when the pipeline is released; Result then
// describes the finalized file (ok is false when nothing was recorded).
type RecordingSink interface {
	media.Sink
	Result() (rec Recording, ok bool)
}

// startRecording attaches a recorder to the room's pipeline once the
// presenter's offer is accepted, if recording is enabled. The room's media
// is not held back by it: a recorder that cannot start is logged and
// skipped.
func (s *Service) startRecording(r *room, m *member, sess Session) {
	if s.opts.Recorder == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended || r.recording != nil || r.pipeline == nil || r.presenter != m {
		return
	}
	sink, err := s.opts.Recorder(RecordingStart{RoomID: r.id, Title: r.title, ProfileURL: r.profile,
		Presenter: m.email, SessionID: sess.ID()})
	if err != nil {
		s.log.Warn("broadcast not recorded", "room", r.id, "err", err)
		return
	}
	if _, err := r.pipeline.NewRecorder("recorder:"+r.id, sink); err != nil {
		_ = sink.Close()
		s.log.Warn("broadcast not recorded: no recorder endpoint", "room", r.id, "err", err)
		return
	}
	r.recording = sink
}

// finishRecording reports the room's finished recording, once its pipeline
// (and so the recorder, which finalized the file) has been released.
func (s *Service) finishRecording(r *room, presenter string) {
	r.mu.Lock()
	sink := r.recording
	r.recording = nil
	r.mu.Unlock()
	if sink == nil {
		return
	}
	rec, ok := sink.Result()
	if !ok {
		return
	}
	s.emit(Event{Type: EventRecordingFinished, RoomID: r.id, Title: r.title, ProfileURL: r.profile,
		Presenter: presenter, Recording: &rec})
}
