package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/rustybalancer/rb/events"
	"github.com/rustybalancer/rb/pkg/bus"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func msgOf[T events.Payload](t testing.TB, seq uint64, ev events.Event[T]) bus.Msg {
	t.Helper()
	b, err := events.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	return bus.Msg{Subject: "test", Data: b, Sequence: seq, Time: ev.Time}
}

func scoreAt(app, ctr string, at time.Time, overall float64) events.Event[events.Score] {
	return events.New(fmt.Sprintf("%s-%d", ctr, at.UnixNano()), at, "scorer/test", events.Score{App: app, Container: ctr, ContainerID: "id-" + ctr, Mode: "legacy",
		CPU: overall, Memory: overall, Network: overall, Availability: overall, Overall: overall, Category: events.CategoryMU})
}

func TestSeries(t *testing.T) {
	tests := []struct {
		name string
		max  int
		add  []int // times in seconds after t0; the key is the time too
		want []int
	}{
		{name: "in order", max: 5, add: []int{1, 2, 3}, want: []int{1, 2, 3}},
		{name: "out of order is sorted", max: 5, add: []int{3, 1, 2}, want: []int{1, 2, 3}},
		{name: "duplicates dropped", max: 5, add: []int{1, 2, 2, 1, 3}, want: []int{1, 2, 3}},
		{name: "full drops the oldest", max: 3, add: []int{1, 2, 3, 4, 5}, want: []int{3, 4, 5}},
		{name: "full refuses older than all", max: 3, add: []int{2, 3, 4, 1}, want: []int{2, 3, 4}},
		{name: "full, insert in the middle", max: 3, add: []int{1, 3, 5, 4}, want: []int{3, 4, 5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSeries[int](tc.max)
			for _, v := range tc.add {
				s.add(t0.Add(time.Duration(v)*time.Second), uint64(v), v)
			}
			if got := s.since(time.Time{}); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("series = %v, want %v", got, tc.want)
			}
			if got := s.since(t0.Add(4 * time.Second)); len(tc.want) > 0 && tc.want[len(tc.want)-1] >= 4 && got[0] < 4 {
				t.Fatalf("since(4s) = %v starts before 4", got)
			}
		})
	}
}

// The history read at start and the live watch deliver the same messages
// in any interleaving; the view ends up the same.
func TestViewOrderAndDuplicatesDoNotMatter(t *testing.T) {
	var msgs []bus.Msg
	seq := uint64(0)
	for i := range 20 {
		seq++
		msgs = append(msgs, msgOf(t, seq, scoreAt("shop", fmt.Sprintf("w%d", i%3), t0.Add(time.Duration(i)*time.Second), float64(40+i))))
	}
	seq++
	msgs = append(msgs, msgOf(t, seq, events.New("d1", t0.Add(5*time.Second), "scaler/test", events.Decision{App: "shop", Action: events.ActionScaleUp, Reason: "r", From: 2, To: 3})))
	seq++
	msgs = append(msgs, msgOf(t, seq, events.New("d2", t0.Add(9*time.Second), "scaler/test", events.Decision{App: "shop", Action: events.ActionHold, Reason: "r", From: 3, To: 3})))

	inOrder := NewView(ViewOptions{}, func() time.Time { return t0.Add(time.Minute) })
	for _, m := range msgs {
		if _, err := inOrder.Apply(m); err != nil {
			t.Fatal(err)
		}
	}
	mixed := NewView(ViewOptions{}, func() time.Time { return t0.Add(time.Minute) })
	// Live first (the last message per subject), then the history, then all again.
	order := append(append([]bus.Msg{msgs[len(msgs)-1], msgs[19], msgs[18], msgs[17]}, msgs...), msgs...)
	for _, m := range order {
		if _, err := mixed.Apply(m); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := inOrder.Detail("shop", -1)
	b, _ := mixed.Detail("shop", -1)
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Fatalf("views differ:\n in order: %s\n    mixed: %s", ja, jb)
	}
	if a.Summary.Desired == nil || *a.Summary.Desired != 3 || len(a.Timeline) != 2 {
		t.Fatalf("desired %v, timeline %d; want 3 and both decisions", a.Summary.Desired, len(a.Timeline))
	}
	ws, _ := inOrder.Scores("shop", -1)
	if len(ws) != 3 || len(ws[0].History) != 7 || ws[0].Score.Overall != 58 {
		t.Fatalf("scores %+v", ws)
	}
}

func TestViewQueueKeepsTheNewest(t *testing.T) {
	v := NewView(ViewOptions{}, nil)
	newer := events.New("q2", t0.Add(time.Second), "qb", events.QueueSnapshot{App: "shop", Generation: 2, Items: []events.QueueItem{item("b", 50, events.StateActive, events.CategoryMU)}})
	older := events.New("q1", t0, "qb", events.QueueSnapshot{App: "shop", Generation: 1, Items: []events.QueueItem{item("a", 50, events.StateActive, events.CategoryMU)}})
	if u, err := v.Apply(msgOf(t, 2, newer)); err != nil || !u.New {
		t.Fatalf("apply newer: %+v %v", u, err)
	}
	if u, err := v.Apply(msgOf(t, 1, older)); err != nil || u.New {
		t.Fatalf("apply older: %+v %v; want not new", u, err)
	}
	items, _ := v.LegacyQueue("shop")
	if len(items) != 1 || items[0].DNSName != "b" {
		t.Fatalf("queue %+v, want the newer one", items)
	}
}

func TestViewRefusesBadMessages(t *testing.T) {
	v := NewView(ViewOptions{MaxApps: 1}, nil)
	tests := []struct {
		name string
		data string
		want error
	}{
		{name: "not json", data: "{", want: events.ErrMalformed},
		{name: "kind the gateway does not show", data: `{"schema":1,"kind":"sample","id":"x","time":"2026-01-01T00:00:00Z","source":"s","data":{"app":"a","container":"c"}}`, want: events.ErrWrongKind},
		{name: "invalid score", data: `{"schema":1,"kind":"score","id":"x","time":"2026-01-01T00:00:00Z","source":"s","data":{"app":"a","container":"c","cpu_score":500,"utilization_category":"LU"}}`, want: events.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := v.Apply(bus.Msg{Subject: "rb.x", Data: []byte(tc.data), Sequence: 1}); !errors.Is(err, tc.want) {
				t.Fatalf("Apply = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := v.Apply(msgOf(t, 1, scoreAt("one", "w", t0, 50))); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Apply(msgOf(t, 2, scoreAt("two", "w", t0, 50))); !errors.Is(err, ErrTooManyApps) {
		t.Fatalf("second app beyond MaxApps=1: %v, want ErrTooManyApps", err)
	}
}

func TestViewForgetsSilentWorkersFirst(t *testing.T) {
	v := NewView(ViewOptions{MaxWorkers: 2}, func() time.Time { return t0.Add(time.Minute) })
	q := events.New("q", t0, "qb", events.QueueSnapshot{App: "shop", Generation: 1, Items: []events.QueueItem{item("on-queue", 50, events.StateActive, events.CategoryMU)}})
	apply := func(seq uint64, m bus.Msg) {
		t.Helper()
		m.Sequence = seq
		if _, err := v.Apply(m); err != nil {
			t.Fatal(err)
		}
	}
	apply(1, msgOf(t, 1, q))
	apply(2, msgOf(t, 2, scoreAt("shop", "on-queue", t0, 50)))              // oldest, but on the queue
	apply(3, msgOf(t, 3, scoreAt("shop", "gone", t0.Add(time.Second), 50))) // off the queue
	apply(4, msgOf(t, 4, scoreAt("shop", "new", t0.Add(2*time.Second), 50)))
	ws, _ := v.Scores("shop", 0)
	var names []string
	for _, w := range ws {
		names = append(names, w.Container)
	}
	if !reflect.DeepEqual(names, []string{"new", "on-queue"}) {
		t.Fatalf("workers kept %v, want the one on the queue and the newest", names)
	}
}

func TestViewStatsAndWorkers(t *testing.T) {
	now := t0.Add(10 * time.Second)
	v := NewView(ViewOptions{}, func() time.Time { return now })
	q := events.New("q", t0, "qb", events.QueueSnapshot{App: "shop", Generation: 1, Items: []events.QueueItem{
		item("active", 60, events.StateActive, events.CategoryMU),
		{Container: "starting", Address: "starting:8080", Score: 100, Weight: 100, State: events.StateInit},
		item("leaving", 90, events.StateSundown, events.CategoryLU),
	}})
	rep := events.New("p", t0.Add(5*time.Second), "proxy", events.ProxyReport{App: "shop", ProxyID: "p1", IntervalSeconds: 2, Backends: []events.BackendReport{
		{Container: "active", InFlight: 3, Requests: 100, Errors: 4},
		{Container: "leaving", InFlight: 1, Requests: 0},
	}})
	for i, m := range []bus.Msg{msgOf(t, 1, q), msgOf(t, 2, scoreAt("shop", "active", t0, 61)), msgOf(t, 3, rep)} {
		if _, err := v.Apply(m); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	stats := v.Stats("shop")
	want := []StatsItem{
		{ID: "starting", Name: "starting", CPUScore: 100, MemoryScore: 100, NetworkScore: 100, AvailabilityScore: 100, OverallScore: 100, Category: events.CategoryInit},
		{ID: "id-active", Name: "active", CPUScore: 61, MemoryScore: 61, NetworkScore: 61, AvailabilityScore: 61, OverallScore: 61, Category: events.CategoryMU},
		{ID: "leaving", Name: "leaving", CPUScore: 100, MemoryScore: 100, NetworkScore: 100, AvailabilityScore: 100, OverallScore: 100, Category: events.CategorySundown},
	}
	if !reflect.DeepEqual(stats, want) {
		t.Fatalf("stats:\n got %+v\nwant %+v", stats, want)
	}
	ws, _ := v.Workers("shop")
	if ws[1].Container != "active" || ws[1].InFlight != 3 || ws[1].RequestRate != 50 || ws[1].ErrorRate != 2 || ws[1].Share != 60.0/160 {
		t.Fatalf("active worker %+v", ws[1])
	}
	if ws[2].Share != 0 || ws[2].InFlight != 1 {
		t.Fatalf("sundown worker %+v: no share, still in flight", ws[2])
	}
	s, _ := v.Summary("shop")
	if s.Workers != 3 || s.Active != 1 || s.Starting != 1 || s.Sundown != 1 || s.Proxies != 1 || s.InFlight != 4 || *s.MeanScore != 61 {
		t.Fatalf("summary %+v", s)
	}
	// The proxy's report ages out.
	now = t0.Add(time.Minute)
	if s, _ := v.Summary("shop"); s.Proxies != 0 || s.InFlight != 0 {
		t.Fatalf("summary after the report went stale: %+v", s)
	}
}

// BenchmarkViewApplyScore is the cost of one live score event: decode,
// validate, latest score and history insert (15 workers, full histories).
func BenchmarkViewApplyScore(b *testing.B) {
	v := NewView(ViewOptions{}, nil)
	msgs := make([]bus.Msg, 15*1000)
	for i := range msgs {
		msgs[i] = msgOf(b, uint64(i+1), scoreAt("shop", fmt.Sprintf("w%d", i%15), t0.Add(time.Duration(i)*time.Millisecond), float64(i%100)))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m := msgs[i%len(msgs)]
		m.Sequence = uint64(i + 1) // always new
		if _, err := v.Apply(m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHubPublish is the cost of fanning one event out to 100 v1 clients.
func BenchmarkHubPublish(b *testing.B) {
	m, err := newMetrics(nil)
	if err != nil {
		b.Fatal(err)
	}
	h := newHub(m)
	var clients []*client
	for range 100 {
		c := &client{endpoint: endpointV1, app: "shop", topics: map[string]bool{TopicScore: true}, send: make(chan []byte, 1), drop: func() {}}
		h.register(c, func() [][]byte { return nil })
		clients = append(clients, c)
	}
	data := []byte(`{"kind":"score"}`)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.publish(outbound{app: "shop", topic: TopicScore, data: data})
		for _, c := range clients {
			<-c.send
		}
	}
}
