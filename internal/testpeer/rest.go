package testpeer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Client calls onair's REST API. Its methods never fail the test: a transport
// error is a Response with Status 0 and Err set, so that they can be used
// from any goroutine.
type Client struct {
	base  string
	http  *http.Client
	token string // sent as Authorization: Bearer, if set
}

// NewClient returns a client of the API at base (e.g. http://host/signal).
func NewClient(base string) *Client {
	return &Client{base: base, http: &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: 8},
		Timeout:   30 * time.Second,
	}}
}

// WithToken returns a client that sends token as Authorization: Bearer on
// every request (and the email header only when a method is given one).
func (c *Client) WithToken(token string) *Client {
	d := *c
	d.token = token
	return &d
}

// CloseIdle closes the client's idle connections.
func (c *Client) CloseIdle() { c.http.CloseIdleConnections() }

// Response is what the server answered.
type Response struct {
	Method, Path string
	Status       int
	Header       http.Header
	Body         []byte
	Err          error // transport error (then Status is 0)
}

func (r Response) String() string {
	if r.Err != nil {
		return fmt.Sprintf("%s %s: %v", r.Method, r.Path, r.Err)
	}
	return fmt.Sprintf("%s %s: %d %s", r.Method, r.Path, r.Status, bytes.TrimSpace(r.Body))
}

// Want returns an error unless the response has the given status.
func (r Response) Want(status int) error {
	if r.Err != nil || r.Status != status {
		return fmt.Errorf("%s, want status %d", r, status)
	}
	return nil
}

// Decode decodes the JSON body into v.
func (r Response) Decode(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("%s: decode: %w", r, err)
	}
	return nil
}

// APIError is the protocol's error body.
type APIError struct {
	Name    string `json:"name"`
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// APIError decodes the body as an error body (zero if it is not one).
func (r Response) APIError() APIError {
	var e APIError
	_ = json.Unmarshal(r.Body, &e)
	return e
}

// Room is a room as GET /room/list and POST /room/live and /room/view show it.
type Room struct {
	RoomID     string `json:"roomId"`
	Title      string `json:"title"`
	ProfileURL string `json:"profileUrl"`
	Count      string `json:"count"`
}

// Pipeline is an entry of GET /media/pipelines.
type Pipeline struct {
	PipelineName string `json:"pipelineName"`
	PipelineID   string `json:"pipelineId"`
}

// Endpoint is an entry of GET /media/endpoints/{email}.
type Endpoint struct {
	EndpointID   string `json:"endpointId"`
	EndpointName string `json:"endpointName"`
	Stats        struct {
		State         string   `json:"state"`
		PacketsIn     uint64   `json:"packetsIn"`
		PacketsOut    uint64   `json:"packetsOut"`
		Layer         string   `json:"layer"`
		LayerPinned   bool     `json:"layerPinned"`
		EstimateBPS   uint64   `json:"estimateBps"`
		LayerSwitches uint64   `json:"layerSwitches"`
		Layers        []string `json:"layers"`
	} `json:"stats"`
}

// Do sends a request. body is sent as is if it is a string or []byte, as
// JSON otherwise, and not at all if nil. email, if not empty, is sent as the
// email header.
func (c *Client) Do(method, path, email string, body any) Response {
	r := Response{Method: method, Path: path}
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewReader([]byte(b))
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			r.Err = err
			return r
		}
		rd = bytes.NewReader(j)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		r.Err = err
		return r
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if email != "" {
		req.Header.Set("email", email)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		r.Err = err
		return r
	}
	defer resp.Body.Close()
	r.Status, r.Header = resp.StatusCode, resp.Header
	r.Body, r.Err = io.ReadAll(resp.Body)
	return r
}

// CreateRoom is POST /room/live.
func (c *Client) CreateRoom(email, roomID, title, profileURL string) Response {
	return c.Do(http.MethodPost, "/room/live", email,
		map[string]string{"roomId": roomID, "title": title, "profileUrl": profileURL})
}

// EndRoom is DELETE /room/live.
func (c *Client) EndRoom(email string) Response {
	return c.Do(http.MethodDelete, "/room/live", email, nil)
}

// Join is POST /room/view.
func (c *Client) Join(email, roomID string) Response {
	return c.Do(http.MethodPost, "/room/view", email, map[string]string{"roomId": roomID})
}

// Leave is DELETE /room/view.
func (c *Client) Leave(email string) Response {
	return c.Do(http.MethodDelete, "/room/view", email, nil)
}

// Rooms is GET /room/list.
func (c *Client) Rooms() ([]Room, error) {
	var out []Room
	return out, c.get("/room/list", &out)
}

// Pipelines is GET /media/pipelines.
func (c *Client) Pipelines() ([]Pipeline, error) {
	var out []Pipeline
	return out, c.get("/media/pipelines", &out)
}

// Endpoints is GET /media/endpoints/{email}.
func (c *Client) Endpoints(email string) ([]Endpoint, error) {
	var out []Endpoint
	return out, c.get("/media/endpoints/"+url.PathEscape(email), &out)
}

// Orphans is GET /media/pipelines/exception.
func (c *Client) Orphans() ([]Pipeline, error) {
	var out []Pipeline
	return out, c.get("/media/pipelines/exception", &out)
}

// ReclaimOrphans is DELETE /media/pipelines/exception.
func (c *Client) ReclaimOrphans() Response {
	return c.Do(http.MethodDelete, "/media/pipelines/exception", "", nil)
}

// get fetches path, wants 200 and decodes the body into v.
func (c *Client) get(path string, v any) error {
	r := c.Do(http.MethodGet, path, "", nil)
	if err := r.Want(http.StatusOK); err != nil {
		return err
	}
	return r.Decode(v)
}
