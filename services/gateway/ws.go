package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// handleLegacy serves /ws: the prototype's array for one app (?app=, else
// APP_IDENTIFIER), on connect when the queue is known and on every change.
func (s *Service) handleLegacy(w http.ResponseWriter, r *http.Request) {
	app := r.URL.Query().Get("app")
	if app == "" {
		app = s.opts.App
	}
	c := &client{endpoint: endpointLegacy, app: app, send: make(chan []byte, s.opts.ClientBuffer)}
	s.serveWS(w, r, c, func() [][]byte {
		if b := s.legacyJSON(app); b != nil {
			return [][]byte{b}
		}
		return nil
	})
}

// handleV1 serves /ws/v1: the event envelopes, as published, of one app
// (?app=) or all, for the topics in ?events= (default all). The current
// queue comes first when queue is asked for.
func (s *Service) handleV1(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	app := q.Get("app")
	topics := map[string]bool{}
	if raw := q.Get("events"); raw != "" {
		for _, t := range strings.Split(raw, ",") {
			t = strings.TrimSpace(t)
			if t == "" {
				continue
			}
			if !slices.Contains(allTopics, t) {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("events: unknown topic %q; want a comma list of %s", t, strings.Join(allTopics, ", ")))
				return
			}
			topics[t] = true
		}
	}
	if len(topics) == 0 {
		for _, t := range allTopics {
			topics[t] = true
		}
	}
	c := &client{endpoint: endpointV1, app: app, topics: topics, send: make(chan []byte, s.opts.ClientBuffer)}
	s.serveWS(w, r, c, func() [][]byte {
		if !topics[TopicQueue] {
			return nil
		}
		var out [][]byte
		apps := []string{app}
		if app == "" {
			apps = apps[:0]
			for _, a := range s.view.Apps() {
				apps = append(apps, a.App)
			}
		}
		for _, a := range apps {
			if b, ok := s.view.Queue(a); ok {
				out = append(out, b)
			}
		}
		return out
	})
}

// legacyJSON is app's queue in the prototype's format, or nil before any queue.
func (s *Service) legacyJSON(app string) []byte {
	items, ok := s.view.LegacyQueue(app)
	if !ok {
		return nil
	}
	b, err := json.Marshal(items)
	if err != nil {
		return nil
	}
	return b
}

// serveWS upgrades the request and writes c's messages until the client
// goes, a write or ping fails, the hub drops it (buffer full) or the
// gateway stops. Reads are only for control frames: a data frame from the
// client closes the connection (CloseRead).
func (s *Service) serveWS(w http.ResponseWriter, r *http.Request, c *client, initial func() [][]byte) {
	if !s.authorizeRead(w, r) {
		return
	}
	// Origin was checked by the CORS middleware against the same allowlist.
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return // Accept has answered the client
	}
	defer conn.CloseNow()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	c.drop = cancel
	ctx = conn.CloseRead(ctx)
	s.hub.register(c, initial)
	defer s.hub.unregister(c)

	ping := time.NewTicker(s.opts.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			if r.Context().Err() != nil {
				// The gateway is stopping.
				_ = conn.Close(websocket.StatusGoingAway, "gateway stopping")
			}
			return // dropped (CloseNow above) or the client went away
		case b := <-c.send:
			wctx, wcancel := context.WithTimeout(ctx, s.opts.WriteTimeout)
			err := conn.Write(wctx, websocket.MessageText, b)
			wcancel()
			if err != nil {
				if ctx.Err() == nil {
					s.hub.dropClient(c, dropWrite)
				}
				return
			}
			s.metrics.wsSent.WithLabelValues(c.endpoint).Inc()
		case <-ping.C:
			pctx, pcancel := context.WithTimeout(ctx, s.opts.PingInterval)
			err := conn.Ping(pctx)
			pcancel()
			if err != nil {
				if ctx.Err() == nil {
					s.hub.dropClient(c, dropPing)
				}
				return
			}
		}
	}
}
