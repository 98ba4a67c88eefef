package gateway

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rustybalancer/rb/pkg/config"
	"github.com/rustybalancer/rb/pkg/store"
)

// maxBody bounds a request body (a config change is a few hundred bytes).
const maxBody = 64 << 10

// defaultDetailPoints is the score history per worker GET /api/v1/apps/{app} returns without ?points=.
const defaultDetailPoints = 300

// routes builds the handler served on both ports.
func (s *Service) routes() (http.Handler, error) {
	mux := http.NewServeMux()
	read := s.readOnly
	mux.HandleFunc("GET /ws", s.handleLegacy)
	mux.HandleFunc("GET /ws/v1", s.handleV1)
	mux.Handle("GET /stats", read(s.handleStats))
	mux.Handle("GET /api/v1/apps", read(s.handleApps))
	mux.Handle("GET /api/v1/apps/{app}", read(s.handleApp))
	mux.Handle("GET /api/v1/apps/{app}/queue", read(s.handleQueue))
	mux.Handle("GET /api/v1/apps/{app}/scores", read(s.handleScores))
	mux.Handle("GET /api/v1/apps/{app}/decisions", read(s.handleDecisions))
	mux.Handle("GET /api/v1/apps/{app}/config", read(s.handleGetConfig))
	mux.HandleFunc("PUT /api/v1/apps/{app}/config", s.handlePutConfig)
	mux.HandleFunc("GET /healthz", s.handleHealth)
	if s.opts.Gatherer != nil {
		mux.Handle("GET /metrics", read(promhttp.HandlerFor(s.opts.Gatherer, promhttp.HandlerOpts{}).ServeHTTP))
	}
	files, err := assetFS()
	if err != nil {
		return nil, fmt.Errorf("gateway: dashboard files: %w", err)
	}
	mux.Handle("GET /", dashboard(files))
	return s.outer(mux), nil
}

// outer wraps every route: the origin policy (CORS allowlist, preflight),
// JSON bodies for the mux's own 404 and 405, and the request counter.
func (s *Service) outer(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := mux.Handler(r)
		route := pattern
		if route == "" {
			route = "unmatched"
		}
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			s.metrics.httpRequests.WithLabelValues(route, strconv.Itoa(rec.status())).Inc()
		}()
		origin := r.Header.Get("Origin")
		crossOrigin := origin != "" && !sameOrigin(origin, r.Host)
		if crossOrigin && !s.originAllowed(origin) {
			writeError(rec, http.StatusForbidden, fmt.Sprintf("origin %s is not allowed to call this gateway: add it to RB_CORS_ORIGINS", origin))
			return
		}
		if crossOrigin {
			h := rec.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				h.Set("Access-Control-Allow-Methods", "GET, PUT, OPTIONS")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
				h.Set("Access-Control-Max-Age", "600")
				rec.WriteHeader(http.StatusNoContent)
				return
			}
		}
		if pattern == "" {
			// The mux answers 404 or 405 (with Allow) in plain text: say it in JSON.
			mux.ServeHTTP(&jsonStatusWriter{ResponseWriter: rec, path: r.URL.Path, method: r.Method}, r)
			return
		}
		mux.ServeHTTP(rec, r)
	})
}

func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, host)
}

func (s *Service) originAllowed(origin string) bool {
	for _, o := range s.opts.CORSOrigins {
		if strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

// readOnly guards a read route with the token when reads are protected.
func (s *Service) readOnly(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.authorizeRead(w, r) {
			h(w, r)
		}
	})
}

// authorizeRead checks the token for reads when RB_GATEWAY_PROTECT_READS is
// on; a browser's WebSocket cannot send headers, so ?access_token= works too.
func (s *Service) authorizeRead(w http.ResponseWriter, r *http.Request) bool {
	if !s.opts.ProtectReads {
		return true
	}
	return s.checkToken(w, r, true)
}

// authorizeWrite checks the token for writes; without a configured token
// every write is refused.
func (s *Service) authorizeWrite(w http.ResponseWriter, r *http.Request) bool {
	if s.opts.Token == "" {
		writeError(w, http.StatusForbidden, "config writes are disabled on this gateway: set RB_GATEWAY_TOKEN to enable them (or use `rb config set`)")
		return false
	}
	return s.checkToken(w, r, false)
}

func (s *Service) checkToken(w http.ResponseWriter, r *http.Request, queryOK bool) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok && queryOK {
		got, ok = r.URL.Query().Get("access_token"), r.URL.Query().Has("access_token")
	}
	if !ok || got == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="rb-gateway"`)
		writeError(w, http.StatusUnauthorized, "missing bearer token: send the header Authorization: Bearer <RB_GATEWAY_TOKEN>")
		return false
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.Token)) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="rb-gateway", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "wrong bearer token: it does not match RB_GATEWAY_TOKEN")
		return false
	}
	return true
}

func (s *Service) handleStats(w http.ResponseWriter, r *http.Request) {
	app := r.URL.Query().Get("app")
	if app == "" {
		app = s.opts.App
	}
	writeJSON(w, http.StatusOK, s.view.Stats(app))
}

func (s *Service) handleApps(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"apps": s.view.Apps(), "default_app": s.opts.App})
}

func (s *Service) handleApp(w http.ResponseWriter, r *http.Request) {
	points, ok := intParam(w, r, "points", defaultDetailPoints)
	if !ok {
		return
	}
	d, found := s.view.Detail(r.PathValue("app"), points)
	if !found {
		notSeen(w, r.PathValue("app"))
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Service) handleQueue(w http.ResponseWriter, r *http.Request) {
	b, ok := s.view.Queue(r.PathValue("app"))
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("app %q: no queue seen yet (is the queue-builder running?)", r.PathValue("app")))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}

func (s *Service) handleScores(w http.ResponseWriter, r *http.Request) {
	points, ok := intParam(w, r, "points", -1)
	if !ok {
		return
	}
	switch h := r.URL.Query().Get("history"); h {
	case "", "true", "1":
	case "false", "0":
		points = 0
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("history: %q; want true or false", h))
		return
	}
	ws, found := s.view.Scores(r.PathValue("app"), points)
	if !found {
		notSeen(w, r.PathValue("app"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"app": r.PathValue("app"), "workers": ws})
}

func (s *Service) handleDecisions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var since time.Time
	if raw := q.Get("since"); raw != "" {
		t, err := parseSince(raw, s.opts.Now())
		if err != nil {
			writeError(w, http.StatusBadRequest, "since: "+err.Error())
			return
		}
		since = t
	}
	var lifecycle, cfg bool
	if raw := q.Get("include"); raw != "" {
		for _, k := range strings.Split(raw, ",") {
			switch strings.TrimSpace(k) {
			case IncludeLifecycle:
				lifecycle = true
			case IncludeConfig:
				cfg = true
			case "":
			default:
				writeError(w, http.StatusBadRequest, fmt.Sprintf("include: unknown kind %q; want a comma list of %s, %s", k, IncludeLifecycle, IncludeConfig))
				return
			}
		}
	}
	evs, found := s.view.Decisions(r.PathValue("app"), since, lifecycle, cfg)
	if !found {
		notSeen(w, r.PathValue("app"))
		return
	}
	if evs == nil {
		evs = []json.RawMessage{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"app": r.PathValue("app"), "events": evs})
}

// parseSince reads an RFC 3339 time or a duration back from now.
func parseSince(raw string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, raw); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(raw); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-01-02T15:04:05Z) nor a positive duration (10m, 1h30m)", raw)
}

func (s *Service) handleGetConfig(w http.ResponseWriter, r *http.Request) {
	if s.opts.Config == nil {
		writeError(w, http.StatusServiceUnavailable, "config is not available: this gateway has no Redis store")
		return
	}
	st, err := s.opts.Config.Get(r.Context(), r.PathValue("app"))
	if err != nil {
		writeError(w, configStatus(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// configChange is the body of PUT /api/v1/apps/{app}/config.
type configChange struct {
	// Values maps variables to values: a string, a number or a boolean;
	// null removes the stored value (the environment's applies again).
	Values map[string]json.RawMessage `json:"values"`
	// Version, when given, must be the stored version (compare-and-swap).
	Version *int64 `json:"version"`
}

const configBodyHelp = `want {"values": {"HIGH_LOAD_THRESHOLD": "50"}, "version": 3} (version optional)`

func (s *Service) handlePutConfig(w http.ResponseWriter, r *http.Request) {
	if !s.authorizeWrite(w, r) {
		return
	}
	if s.opts.Config == nil {
		writeError(w, http.StatusServiceUnavailable, "config is not available: this gateway has no Redis store")
		return
	}
	var body configChange
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		s.metrics.configWrites.WithLabelValues("invalid").Inc()
		writeError(w, http.StatusBadRequest, fmt.Sprintf("request body: %v; %s", err, configBodyHelp))
		return
	}
	if _, err := dec.Token(); err != io.EOF {
		s.metrics.configWrites.WithLabelValues("invalid").Inc()
		writeError(w, http.StatusBadRequest, "request body: data after the JSON object; "+configBodyHelp)
		return
	}
	u := ConfigUpdate{App: r.PathValue("app"), Set: map[string]string{}, Version: body.Version,
		By: "gateway PUT from " + clientIP(r)}
	for k, raw := range body.Values {
		v, unset, err := configValue(raw)
		if err != nil {
			s.metrics.configWrites.WithLabelValues("invalid").Inc()
			writeError(w, http.StatusBadRequest, fmt.Sprintf("values.%s: %v", k, err))
			return
		}
		if unset {
			u.Unset = append(u.Unset, k)
		} else {
			u.Set[k] = v
		}
	}
	if len(u.Set) == 0 && len(u.Unset) == 0 {
		s.metrics.configWrites.WithLabelValues("invalid").Inc()
		writeError(w, http.StatusBadRequest, "values: nothing to change; "+configBodyHelp)
		return
	}
	st, err := s.opts.Config.Update(r.Context(), u)
	switch {
	case err == nil && len(st.Changed) == 0:
		s.metrics.configWrites.WithLabelValues("unchanged").Inc()
		writeJSON(w, http.StatusOK, st)
	case err == nil:
		s.metrics.configWrites.WithLabelValues("ok").Inc()
		writeJSON(w, http.StatusOK, st)
	case errors.Is(err, ErrNotPublished):
		s.metrics.configWrites.WithLabelValues("not_published").Inc()
		writeJSON(w, http.StatusBadGateway, map[string]any{"error": err.Error(), "config": st})
	default:
		var ce *config.Error
		switch {
		case errors.As(err, &ce):
			s.metrics.configWrites.WithLabelValues("invalid").Inc()
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": err.Error(), "problems": problems(ce)})
		case errors.Is(err, store.ErrConflict):
			s.metrics.configWrites.WithLabelValues("conflict").Inc()
			writeError(w, http.StatusConflict, err.Error())
		default:
			s.metrics.configWrites.WithLabelValues("error").Inc()
			writeError(w, configStatus(err), err.Error())
		}
	}
}

// problem is one bad variable in a 400 answer.
type problem struct {
	Variable string `json:"variable"`
	Value    string `json:"value,omitempty"`
	Reason   string `json:"reason"`
}

func problems(ce *config.Error) []problem {
	out := make([]problem, len(ce.Problems))
	for i, p := range ce.Problems {
		out[i] = problem{Variable: p.Var, Value: p.Value, Reason: p.Reason}
	}
	return out
}

// configValue turns a JSON value into the text an environment variable
// would hold; null means remove.
func configValue(raw json.RawMessage) (v string, unset bool, err error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return "", true, nil
	case raw[0] == '"':
		if err := json.Unmarshal(raw, &v); err != nil {
			return "", false, err
		}
		return v, false, nil
	case string(raw) == "true" || string(raw) == "false":
		return string(raw), false, nil
	case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
		return string(raw), false, nil
	}
	return "", false, errors.New("want a string, a number, a boolean, or null to remove the value")
}

func configStatus(err error) int {
	switch {
	case errors.Is(err, ErrBadApp):
		return http.StatusBadRequest
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, store.ErrStale):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func clientIP(r *http.Request) string {
	host := r.RemoteAddr
	if i := strings.LastIndexByte(host, ':'); i > 0 {
		host = host[:i]
	}
	return strings.Trim(host, "[]")
}

// handleHealth is 200 while NATS is connected, else 503 with the reason.
func (s *Service) handleHealth(w http.ResponseWriter, _ *http.Request) {
	if err := s.bus.Health(); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unhealthy", "error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// dashboard serves the embedded files; a path that is not one of them is a JSON 404.
func dashboard(files fs.FS) http.Handler {
	fsrv := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		if name == "" {
			name = "index.html"
		}
		if st, err := fs.Stat(files, name); err != nil || st.IsDir() {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no such page %s: the dashboard is at /, the API under /api/v1/", r.URL.Path))
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
		fsrv.ServeHTTP(w, r)
	})
}

func notSeen(w http.ResponseWriter, app string) {
	writeError(w, http.StatusNotFound, fmt.Sprintf("app %q: no events seen for it (GET /api/v1/apps lists the apps)", app))
}

func intParam(w http.ResponseWriter, r *http.Request, name string, def int) (int, bool) {
	raw := r.URL.Query().Get(name)
	if raw == "" {
		return def, true
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%s: %q; want a whole number ≥ 0", name, raw))
		return 0, false
	}
	return n, true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encode the answer: `+strings.ReplaceAll(err.Error(), `"`, `'`)+`"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// statusRecorder remembers the status code for the request counter.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}

// Unwrap lets http.ResponseController (and the WebSocket upgrade) reach the connection.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// jsonStatusWriter replaces the mux's plain-text 404/405 body with JSON.
type jsonStatusWriter struct {
	http.ResponseWriter
	path, method string
	wrote        bool
}

func (j *jsonStatusWriter) WriteHeader(code int) {
	if j.wrote {
		return
	}
	j.wrote = true
	msg := fmt.Sprintf("no such route %s %s", j.method, j.path)
	if code == http.StatusMethodNotAllowed {
		msg = fmt.Sprintf("method %s is not allowed on %s; allowed: %s", j.method, j.path, j.Header().Get("Allow"))
	}
	b, _ := json.Marshal(map[string]string{"error": msg})
	j.Header().Set("Content-Type", "application/json")
	j.Header().Del("X-Content-Type-Options")
	j.ResponseWriter.WriteHeader(code)
	_, _ = j.ResponseWriter.Write(append(b, '\n'))
}

func (j *jsonStatusWriter) Write(b []byte) (int, error) {
	if !j.wrote {
		j.WriteHeader(http.StatusOK)
	}
	return len(b), nil // the mux's text is replaced by the JSON above
}
