package wsapi

import (
	"encoding/json"

	"github.com/onair-live/onair/internal/media"
)

// inbound is any client message; which fields matter depends on ID.
type inbound struct {
	ID        string         `json:"id"`
	RoomID    string         `json:"roomId"`
	Email     string         `json:"email"`
	SDPOffer  string         `json:"sdpOffer"`
	Candidate *candidateBody `json:"candidate"`
	Token     string         `json:"token"`
	Layer     string         `json:"layer"` // viewer, setLayer: a simulcast layer
}

// candidateBody is an ICE candidate on the wire, as browsers give one
// (RTCIceCandidateInit).
type candidateBody struct {
	Candidate        string  `json:"candidate"`
	SDPMid           *string `json:"sdpMid,omitempty"`
	SDPMLineIndex    *uint16 `json:"sdpMLineIndex,omitempty"`
	UsernameFragment *string `json:"usernameFragment,omitempty"`
}

func (c candidateBody) media() media.Candidate {
	return media.Candidate{Candidate: c.Candidate, SDPMid: c.SDPMid,
		SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment}
}

func candidateBodyOf(c media.Candidate) candidateBody {
	return candidateBody{Candidate: c.Candidate, SDPMid: c.SDPMid,
		SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment}
}

// decode reads one client message. Fields of the wrong type are an error;
// unknown fields are ignored (clients send more than the server reads).
func decode(data []byte) (inbound, error) {
	var m inbound
	err := json.Unmarshal(data, &m)
	return m, err
}

type openMsg struct {
	ID        string `json:"id"`
	SessionID string `json:"session-id"`
}

type responseMsg struct {
	ID        string `json:"id"`
	Response  string `json:"response"`
	SDPAnswer string `json:"sdpAnswer,omitempty"`
	Message   string `json:"message,omitempty"`
}

type candidateMsg struct {
	ID        string        `json:"id"`
	Candidate candidateBody `json:"candidate"`
}

type stopMsg struct {
	ID      string `json:"id"`
	Message string `json:"message"`
}

// errorMsg is onair's answer to a message it cannot act on (malformed JSON,
// unknown id, oversized frame, a candidate for no session). Clients that
// do not know this id (kurento-utils ones) ignore it.
type errorMsg struct {
	ID      string `json:"id"`
	Message string `json:"message"`
}

// Message ids.
const (
	idOpen              = "open"
	idPresenter         = "presenter"
	idViewer            = "viewer"
	idOnIceCandidate    = "onIceCandidate"
	idIceCandidate      = "iceCandidate"
	idPresenterResponse = "presenterResponse"
	idViewerResponse    = "viewerResponse"
	idStop              = "stopCommunication"
	idError             = "error"
	idToken             = "token"
	idTokenResponse     = "tokenResponse"
	idSetLayer          = "setLayer"
	idSetLayerResponse  = "setLayerResponse"
)

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("signal: cannot marshal " + err.Error())
	}
	return b
}
